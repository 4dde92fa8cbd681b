"""The gateway's own knobs (`HARTONOMOUS_GATEWAY_*`); where it listens is the platform's
`http_host` / `http_port` setting."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

MIB = 1024 * 1024


@dataclass(frozen=True)
class GatewayConfig:
    # Per API key and gateway replica: a steady rate with bursts up to `rate_burst` requests.
    rate_per_second: float = 50.0
    rate_burst: int = 100
    # JSON bodies, and multipart uploads to POST /v1/atoms (ingest's own limit is 256 MiB).
    max_body_bytes: int = 8 * MIB
    max_upload_bytes: int = 256 * MIB
    # Model files uploaded to POST /v1/models (ingest spools them to disk; its limit is 64 GiB).
    max_model_bytes: int = 64 * 1024 * MIB
    # Origins allowed to call from a browser; none (CORS off) unless configured.
    cors_origins: tuple[str, ...] = ()
    # Metering comes from the log either way: billing down only skips the admission check.
    quota_fail_open: bool = True
    # A revoked key stops working within this many seconds on every replica.
    key_cache_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GatewayConfig:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"HARTONOMOUS_GATEWAY_{f.name.upper()}", "").strip()
            if raw:
                values[f.name] = _coerce(f.name, raw, f.default)
        return cls(**values)  # type: ignore[arg-type]

    def body_limit(self, method: str, path: str, content_type: str) -> int:
        """Uploads may be large, model files larger; every other body (JSON ingest included)
        is small."""
        if method != "POST" or not content_type.startswith("multipart/"):
            return self.max_body_bytes
        return {"/v1/atoms": self.max_upload_bytes, "/v1/models": self.max_model_bytes}.get(
            path, self.max_body_bytes
        )


def _coerce(name: str, raw: str, default: object) -> object:
    try:
        if isinstance(default, bool):
            if raw.lower() not in ("1", "true", "yes", "0", "false", "no"):
                raise ValueError(raw)
            return raw.lower() in ("1", "true", "yes")
        if isinstance(default, tuple):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        return int(raw) if isinstance(default, int) else float(raw)
    except ValueError:
        raise ValueError(f"HARTONOMOUS_GATEWAY_{name.upper()} has a bad value {raw!r}") from None

"""One settings object for every process, parsed once from the environment and CLI flags.

An unset variable means the embedded default: the platform runs on one machine with no servers.
Each `HARTONOMOUS_<NAME>` variable has a matching `--<name>` CLI flag that overrides it.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".hartonomous")
    kafka_bootstrap: str | None = None
    postgres_url: str | None = None
    qdrant_url: str | None = None
    # The search service's engine without a Qdrant URL: "embedded" (exact search over per-tenant
    # matrices + tantivy BM25) or "qdrant" (qdrant-client's local mode, for small setups).
    search_engine: str = "embedded"
    # A search replica that keeps a projection of its own (its own consumer group, join schema
    # and store under its data dir): how replicas scale reads without a shared vector server.
    # Unset: the one projection every search process shares (group and schema `search`).
    search_replica: str | None = None
    neo4j_uri: str | None = None
    neo4j_user: str | None = None
    neo4j_password: str | None = None
    blob_url: str | None = None
    # Loopback by default (one machine); containers set 0.0.0.0 so probes and peers reach them.
    grpc_host: str = "127.0.0.1"
    grpc_port: int = 50051
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Prometheus exposition (/metrics) of every process; 0 turns it off.
    metrics_port: int = 9090
    log_level: str = "INFO"
    # Playbooks the autonomous loop adds to its own: "module:attribute", a sequence of Playbook.
    ooda_playbooks: str | None = None
    # The inference service's decoder: sequences generated at once (0: this process does not
    # generate, and skips loading and warming SmolLM2) and the tokens each may span.
    generation_slots: int = 8
    generation_context: int = 1024
    # At start a process "create"s the platform's topics it misses; with "require" it only
    # checks they exist (Kafka that lets services read and write but not create topics: they
    # are provisioned once, by `hartonomous topics --create`).
    topic_provisioning: str = "create"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(_env_name(f.name))
            if raw not in (None, ""):
                values[f.name] = _coerce(f.name, raw)
        return cls(**values)  # type: ignore[arg-type]

    def with_args(self, args: argparse.Namespace) -> Settings:
        """Overlay CLI flags (added by `add_arguments`) that were given."""
        given = {
            f.name: _coerce(f.name, str(getattr(args, f.name)))
            for f in fields(self)
            if getattr(args, f.name, None) is not None
        }
        return replace(self, **given)  # type: ignore[arg-type]

    @property
    def postgres_dir(self) -> Path:
        return self.data_dir / "postgres"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one `--flag` per setting; help text names the environment variable it overrides."""
    for f in fields(Settings):
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            help=f"overrides {_env_name(f.name)}",
        )


def _env_name(field_name: str) -> str:
    return "HARTONOMOUS_" + field_name.upper()


def _coerce(name: str, raw: str) -> object:
    if name == "data_dir":
        return Path(raw)
    if name in _INTEGERS:
        try:
            return int(raw)
        except ValueError:
            raise ValueError(f"{_env_name(name)} must be an integer, got {raw!r}") from None
    return raw


_INTEGERS = frozenset(f.name for f in fields(Settings) if isinstance(f.default, int))

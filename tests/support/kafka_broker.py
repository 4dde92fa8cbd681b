"""A real Kafka broker for the suite: KAFKA_BOOTSTRAP_SERVERS when set, else the local single-node
broker that deploy/local/kafka.sh runs from Maven Central jars (started once and left running, so
later runs reuse it). Kafka tests are required: when no broker can be had they fail, never skip."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "kafka.sh"
# The first start may download the jars (tens of MB through Maven) before the broker boots.
_START_TIMEOUT_S = 900

_lock = threading.Lock()
_bootstrap: str | None = None


def kafka_bootstrap() -> str:
    """The bootstrap address ("host:port") of a running broker."""
    global _bootstrap
    with _lock:
        if _bootstrap is None:
            _bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or _start_local_broker()
        return _bootstrap


def _start_local_broker() -> str:
    try:
        done = subprocess.run(
            [str(_SCRIPT), "up"],
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"could not start Kafka with {_SCRIPT} up: {exc}") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"Kafka could not be started: {_SCRIPT} up exited {done.returncode}\n"
            f"{done.stderr[-4000:]}"
        )
    return lines[-1]

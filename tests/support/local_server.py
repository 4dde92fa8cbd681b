"""Start a real server with one of the deploy/local scripts, once per test process.

The servers are required by the suite: when one cannot be had the tests fail, never skip."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "deploy" / "local"
# The first start may download the jars (tens to ~120 MB through Maven) before the server boots.
START_TIMEOUT_S = 900

_lock = threading.Lock()
_addresses: dict[str, str] = {}


def local_server(script: str, what: str) -> str:
    """Run `deploy/local/<script> up` (idempotent) and return the address it prints last."""
    with _lock:
        if script not in _addresses:
            _addresses[script] = _up(SCRIPTS / script, what)
        return _addresses[script]


def _up(path: Path, what: str) -> str:
    try:
        done = subprocess.run(
            [str(path), "up"], capture_output=True, text=True, timeout=START_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"could not start {what} with {path} up: {exc}") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"{what} could not be started: {path} up exited {done.returncode}\n"
            f"{done.stderr[-4000:]}"
        )
    return lines[-1]

"""Start a real server with one of the deploy/local scripts, once per test process.

The servers are required by the suite: when one cannot be had the tests fail, never skip. What
a test run started it stops again at the end (`stop_started`, from tests/conftest.py); a server
that was running before is left as it was. HARTONOMOUS_KEEP_SERVERS=1 keeps them running, so a
developer's next run starts in seconds."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[2] / "deploy" / "local"
# The first start may download the jars (tens to ~120 MB through Maven) before the server boots.
START_TIMEOUT_S = 900

_lock = threading.Lock()
_addresses: dict[str, str] = {}
_started: list[Path] = []  # by this process, in order
KEEP = "HARTONOMOUS_KEEP_SERVERS"


def local_server(script: str, what: str) -> str:
    """Run `deploy/local/<script> up` (idempotent) and return the address it prints last."""
    with _lock:
        if script not in _addresses:
            _addresses[script] = _up(SCRIPTS / script, what)
        return _addresses[script]


def stop_started() -> None:
    """Stop, newest first, the servers this process started (unless KEEP is set)."""
    if os.environ.get(KEEP):
        return
    while _started:
        path = _started.pop()
        subprocess.run([str(path), "down"], capture_output=True, timeout=180, check=False)


def _up(path: Path, what: str) -> str:
    running = subprocess.run([str(path), "status"], capture_output=True, timeout=60, check=False)
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
    if running.returncode != 0:
        _started.append(path)
    return lines[-1]

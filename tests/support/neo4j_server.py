"""A real Neo4j server for the suite: NEO4J_URI when set, else the local Community server that
deploy/local/neo4j.sh runs from Maven Central jars (started once and left running, so later runs
reuse it). Neo4j tests are required: when no server can be had they fail, never skip."""

from __future__ import annotations

import os
import subprocess
import threading
from pathlib import Path

_SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "local" / "neo4j.sh"
# The first start may download the jars (about 120 MB through Maven) before the server boots.
_START_TIMEOUT_S = 900
_DEFAULT_PASSWORD = "hartonomous-test"

_lock = threading.Lock()
_uri: str | None = None


def neo4j_uri() -> str:
    """The bolt URI of a running server."""
    global _uri
    with _lock:
        if _uri is None:
            _uri = os.environ.get("NEO4J_URI") or _start_local_server()
        return _uri


def neo4j_auth() -> tuple[str, str]:
    """User and password of that server (what neo4j.sh set up, unless NEO4J_URI names another)."""
    return (
        os.environ.get("NEO4J_USER", "neo4j"),
        os.environ.get("NEO4J_PASSWORD", _DEFAULT_PASSWORD),
    )


def _start_local_server() -> str:
    try:
        done = subprocess.run(
            [str(_SCRIPT), "up"],
            capture_output=True,
            text=True,
            timeout=_START_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RuntimeError(f"could not start Neo4j with {_SCRIPT} up: {exc}") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"Neo4j could not be started: {_SCRIPT} up exited {done.returncode}\n"
            f"{done.stderr[-4000:]}"
        )
    return lines[-1]

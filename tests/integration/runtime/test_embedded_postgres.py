"""The embedded Postgres server belongs to the processes using its data dir: the last one out
stops it, even when an earlier holder was killed outright (SIGKILL never lets go of it)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

START = """
import os, signal, sys
from pathlib import Path
from hartonomous.postgres import embedded_postgres_url
print(embedded_postgres_url(Path(sys.argv[1])), flush=True)
if sys.argv[2] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


def _hold(pgdata: Path, end: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", START, str(pgdata), end],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=Path(__file__).parents[3],
    )


def _postmaster(pgdata: Path) -> int | None:
    """The running server's pid, if one runs."""
    pidfile = pgdata / "postmaster.pid"
    if not pidfile.exists():
        return None
    pid = int(pidfile.read_text().split()[0])
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def test_a_killed_holder_does_not_orphan_the_server(tmp_path: Path) -> None:
    pgdata = tmp_path / "pgdata"
    try:
        killed = _hold(pgdata, "kill")
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        assert _postmaster(pgdata) is not None  # the killed process could not stop it

        clean = _hold(pgdata, "exit")  # a restart adopts the server, and stops it on exit
        assert clean.returncode == 0, clean.stderr
        deadline = time.monotonic() + 30
        while _postmaster(pgdata) is not None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _postmaster(pgdata) is None
    finally:
        left = _postmaster(pgdata)
        if left is not None:  # this test's own server, when it failed: not left behind
            os.kill(left, signal.SIGTERM)

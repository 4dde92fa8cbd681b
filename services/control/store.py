"""Schema `control` in Postgres: every ConfigChanged, a projection of the `control` topic.

A change is keyed by its event id (a second copy of an event changes nothing). A key's
changes all sit in one partition (the topic is keyed by the tunable's key), so their offsets
order them: the effective value is the one of the highest offset."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from hartonomous.runtime.inbox import Connection
from services.control.domain import Change

SCHEMA = "control"
_SETUP_LOCK = 0x434F_4E54  # advisory lock: replicas starting together create the schema once

_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.changes (
    event_id text primary key,
    key text not null,
    old_value text,
    new_value text not null,
    actor text not null,
    reason text not null,
    changed_at timestamptz not null,
    log_offset bigint not null);
create index if not exists changes_by_key on {SCHEMA}.changes (key, log_offset desc);
"""


def _change(row: asyncpg.Record) -> Change:
    return Change(
        row["key"],
        row["old_value"],
        row["new_value"],
        row["actor"],
        row["reason"],
        row["changed_at"],
        row["event_id"],
    )


class ChangeWriter:
    """The projection's writes inside one transaction."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    async def record(self, change: Change, log_offset: int) -> None:
        await self._conn.execute(
            f"insert into {SCHEMA}.changes values ($1, $2, $3, $4, $5, $6, $7, $8)"
            " on conflict (event_id) do nothing",
            change.event_id,
            change.key,
            change.old_value,
            change.new_value,
            change.actor,
            change.reason,
            change.changed_at,
            log_offset,
        )


class ControlStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def setup(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _SETUP_LOCK)
            await conn.execute(_DDL)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[ChangeWriter]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield ChangeWriter(conn)

    async def current(self) -> dict[str, Change]:
        """Key -> its latest change, for every key ever changed."""
        rows = await self._pool.fetch(
            f"select distinct on (key) * from {SCHEMA}.changes order by key, log_offset desc"
        )
        return {row["key"]: _change(row) for row in rows}

    async def history(self, key: str, limit: int) -> list[Change]:
        rows = await self._pool.fetch(
            f"select * from {SCHEMA}.changes where key = $1 order by log_offset desc limit $2",
            key,
            limit,
        )
        return [_change(row) for row in rows]

"""The idempotent inbox: a projection records the last offset it applied per partition in the
same transaction as its change, so a re-delivered event is recognised and skipped."""

from __future__ import annotations

import asyncpg

from hartonomous.eventlog.port import StoredRecord


class Inbox:
    def __init__(self, schema: str, consumer: str) -> None:
        self._table = f"{schema}.inbox"
        self._schema = schema
        self._consumer = consumer

    async def setup(self, conn: asyncpg.Connection) -> None:
        await conn.execute(
            f"create schema if not exists {self._schema};"
            f" create table if not exists {self._table} ("
            "  consumer text not null, topic text not null, partition int not null,"
            '  "offset" bigint not null, primary key (consumer, topic, partition))'
        )

    async def claim(self, conn: asyncpg.Connection, record: StoredRecord) -> bool:
        """Inside the projection's transaction: True (and remembered) when `record` is new.

        A partition is applied in offset order, so "newer than the last applied offset" is
        exactly "not applied yet"."""
        applied = await conn.fetchval(
            f"insert into {self._table} as i values ($1, $2, $3, $4)"
            " on conflict (consumer, topic, partition) do update"
            '  set "offset" = excluded."offset" where i."offset" < excluded."offset"'
            " returning true",
            self._consumer,
            record.topic,
            record.partition,
            record.offset,
        )
        return bool(applied)

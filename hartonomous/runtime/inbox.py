"""The idempotent inbox: a projection in Postgres records the last offset it applied per
partition in the same transaction as its change, so a re-delivered record is recognised and
skipped. A partition is applied in offset order, so "after the last applied offset" is exactly
"not applied yet"."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from hartonomous.eventlog.port import Position, StoredRecord

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class Inbox:
    def __init__(self, schema: str, consumer: str) -> None:
        self.table = f"{schema}.inbox"
        self._schema = schema
        self._consumer = consumer

    async def setup(self, conn: Connection) -> None:
        await conn.execute(
            f"create schema if not exists {self._schema};"
            f" create table if not exists {self.table} ("
            "  consumer text not null, topic text not null, partition int not null,"
            '  "offset" bigint not null, primary key (consumer, topic, partition))'
        )

    async def claim(self, conn: Connection, records: Sequence[StoredRecord]) -> set[Position]:
        """Inside the projection's transaction: the positions of the records not applied before.
        Every record's partition is then remembered as applied up to its last record."""
        last: dict[tuple[str, int], int] = {}
        for r in records:
            last[(r.topic, r.partition)] = max(last.get((r.topic, r.partition), -1), r.offset)
        parts = sorted(last)  # rows locked in one order: concurrent claims cannot deadlock
        topics, partitions = [t for t, _ in parts], [p for _, p in parts]
        # Locks each partition's row (creating it at -1: nothing applied) and reads it, so a
        # second member of the group claiming the same records waits, then sees them applied.
        rows = await conn.fetch(
            f"insert into {self.table} as i"
            " select $1, t, p, -1 from unnest($2::text[], $3::int[]) as u(t, p)"
            ' on conflict (consumer, topic, partition) do update set "offset" = i."offset"'
            ' returning topic, partition, "offset"',
            self._consumer,
            topics,
            partitions,
        )
        applied = {(row["topic"], row["partition"]): row["offset"] for row in rows}
        await conn.execute(
            f'update {self.table} as i set "offset" = greatest(i."offset", u.o)'
            " from unnest($2::text[], $3::int[], $4::bigint[]) as u(t, p, o)"
            " where i.consumer = $1 and i.topic = u.t and i.partition = u.p",
            self._consumer,
            topics,
            partitions,
            [last[part] for part in parts],
        )
        return {r.position for r in records if r.offset > applied[(r.topic, r.partition)]}

    async def applied(self, conn: Connection, topic: str) -> dict[int, int]:
        """Partition -> the offset after the last record applied (what reconcile compares)."""
        rows = await conn.fetch(
            f'select partition, "offset" from {self.table} where consumer = $1 and topic = $2',
            self._consumer,
            topic,
        )
        return {row["partition"]: row["offset"] + 1 for row in rows}

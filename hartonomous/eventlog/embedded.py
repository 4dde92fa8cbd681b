"""The embedded event log: Kafka's semantics on a Postgres schema (`log`).

Why it is correct: a partition's head row is locked (UPDATE) for the whole append transaction,
so offsets are dense and commit in offset order — a reader can never see offset k+1 before k.
Consumers sleep on LISTEN/NOTIFY instead of polling; group membership is a heartbeat table, and
partitions are spread round-robin over the live members of each topic's subscribers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime

import asyncpg

from hartonomous.eventlog.partitioner import partition_for
from hartonomous.eventlog.port import (
    Consumer,
    EventLog,
    EventLogError,
    Position,
    Record,
    StoredRecord,
    TopicSpec,
    UnknownTopicError,
)
from hartonomous.postgres import create_pool

logger = logging.getLogger(__name__)

CHANNEL = "hartonomous_log"
GROUP_PREFIX = "group:"
_SCHEMA_LOCK = 0x4841_5254  # advisory lock id: concurrent first starts create the schema once

_SCHEMA = f"""
create schema if not exists log;
create table if not exists log.topics (
    name text primary key,
    partitions int not null check (partitions > 0));
create table if not exists log.heads (
    topic text not null references log.topics (name),
    partition int not null,
    next_offset bigint not null default 0,
    primary key (topic, partition));
create table if not exists log.records (
    topic text not null,
    partition int not null,
    "offset" bigint not null,
    ts timestamptz not null default clock_timestamp(),
    key bytea not null,
    value bytea not null,
    headers jsonb not null,
    primary key (topic, partition, "offset"));
create index if not exists records_by_time on log.records (topic, partition, ts);
create table if not exists log.group_offsets (
    group_id text not null,
    topic text not null,
    partition int not null,
    next_offset bigint not null,
    primary key (group_id, topic, partition));
create table if not exists log.group_members (
    group_id text not null,
    member_id text not null,
    topics text[] not null,
    heartbeat timestamptz not null,
    primary key (group_id, member_id));
-- One append in one statement, so one round trip: reserve the offsets (heads locked in sorted
-- order, so concurrent multi-partition appends cannot deadlock), insert, notify each topic.
create or replace function log.append(
    p_topics text[], p_partitions int[], p_keys bytea[], p_values bytea[], p_headers jsonb[])
returns bigint[] language plpgsql as $$
declare
    slot record;
    offsets bigint[] := array_fill(0::bigint, array[cardinality(p_topics)]);
    first bigint;
begin
    for slot in
        select topic, partition, array_agg(i order by i) as indexes
        from unnest(p_topics, p_partitions) with ordinality as r(topic, partition, i)
        group by topic, partition order by topic, partition
    loop
        update log.heads set next_offset = next_offset + cardinality(slot.indexes)
        where topic = slot.topic and partition = slot.partition
        returning next_offset - cardinality(slot.indexes) into first;
        if first is null then
            raise exception 'no partition % of topic %', slot.partition, slot.topic;
        end if;
        for n in 1 .. cardinality(slot.indexes) loop
            offsets[slot.indexes[n]] := first + n - 1;
        end loop;
    end loop;
    insert into log.records (topic, partition, "offset", key, value, headers)
    select * from unnest(p_topics, p_partitions, offsets, p_keys, p_values, p_headers);
    perform pg_notify('{CHANNEL}', t)
    from (select distinct unnest(p_topics) as t order by 1) as changed;
    return offsets;
end $$;
"""

SLOW_APPEND_S = 1.0  # an append (insert to commit) slower than this is logged

_FETCH = """
select r.topic, r.partition, r."offset", r.ts, r.key, r.value, r.headers::text
from unnest($1::text[], $2::int[], $3::bigint[]) as p(topic, partition, pos)
cross join lateral (
    select * from log.records r
    where r.topic = p.topic and r.partition = p.partition and r."offset" >= p.pos
    order by r."offset" limit $4) r
order by r.topic, r.partition, r."offset"
"""


def _stored(row: asyncpg.Record) -> StoredRecord:
    return StoredRecord(
        topic=row["topic"],
        partition=row["partition"],
        offset=row["offset"],
        timestamp=row["ts"],
        key=row["key"],
        value=row["value"],
        headers=json.loads(row["headers"]),
    )


class EmbeddedEventLog(EventLog):
    def __init__(
        self,
        url: str,
        *,
        session_timeout: float = 10.0,
        heartbeat_interval: float = 1.0,
        pool_size: int = 8,
    ) -> None:
        self._url = url
        self._session_timeout = session_timeout
        self.heartbeat_interval = heartbeat_interval
        self._pool_size = pool_size
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._partitions: dict[str, int] = {}
        self._listeners: dict[str, set[Callable[[str], None]]] = defaultdict(set)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise EventLogError("the embedded event log is not started")
        return self._pool

    async def start(self) -> None:
        self._pool = await create_pool(self._url, max_size=self._pool_size)
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            await conn.execute(_SCHEMA)
        self._listener = await asyncpg.connect(self._url)
        await self._listener.add_listener(CHANNEL, self._on_notify)
        await self._load_topics()

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    def _on_notify(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        name = str(payload)
        for callback in list(self._listeners.get(name, ())):
            callback(name)

    def listen(self, names: Sequence[str], callback: Callable[[str], None]) -> None:
        """Call `callback(name)` when a topic in `names` gets records or a group changes."""
        for name in names:
            self._listeners[name].add(callback)

    def unlisten(self, names: Sequence[str], callback: Callable[[str], None]) -> None:
        for name in names:
            self._listeners[name].discard(callback)

    async def _load_topics(self) -> None:
        rows = await self.pool.fetch("select name, partitions from log.topics")
        self._partitions = {r["name"]: r["partitions"] for r in rows}

    async def partitions(self, topic: str) -> int:
        if topic not in self._partitions:
            await self._load_topics()  # another process may have provisioned it
            if topic not in self._partitions:
                raise UnknownTopicError(f"unknown topic {topic!r}: provision it with ensure_topics")
        return self._partitions[topic]

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            for spec in specs:
                if spec.partitions < 1:
                    raise ValueError(f"topic {spec.name!r} needs at least one partition")
                await conn.execute(
                    "insert into log.topics values ($1, $2) on conflict do nothing",
                    spec.name,
                    spec.partitions,
                )
                await conn.execute(
                    "insert into log.heads (topic, partition)"
                    " select t.name, g from log.topics t, generate_series(0, t.partitions - 1) g"
                    " where t.name = $1 on conflict do nothing",
                    spec.name,
                )
        await self._load_topics()

    async def topics(self) -> dict[str, int]:
        await self._load_topics()
        return dict(self._partitions)

    async def append(self, records: Sequence[Record]) -> list[Position]:
        return await self._append(records, bounded=False)

    async def append_atomic(
        self, records: Sequence[Record], *, within: float | None = None
    ) -> list[Position]:
        # Every append is all-or-nothing here (one SQL transaction); a bounded one never commits
        # once given up on (see _append).
        try:
            async with asyncio.timeout(within):
                return await self._append(records, bounded=within is not None)
        except TimeoutError:
            raise EventLogError(f"atomic append: not committed within {within} s") from None

    async def _append(self, records: Sequence[Record], *, bounded: bool) -> list[Position]:
        if not records:
            return []
        partitions = [
            partition_for(record.key, await self.partitions(record.topic)) for record in records
        ]
        started = time.monotonic()
        async with self.pool.acquire() as conn:
            acquired = time.monotonic()
            # One statement is one transaction and one round trip. A bounded append runs it in
            # an explicit transaction (two more round trips): a statement cancelled in flight
            # may still commit, a transaction cancelled before its COMMIT never does.
            transaction = conn.transaction() if bounded else contextlib.nullcontext()
            async with transaction:
                offsets = await conn.fetchval(
                    "select log.append($1, $2, $3, $4, $5)",
                    [record.topic for record in records],
                    partitions,
                    [record.key for record in records],
                    [record.value for record in records],
                    [json.dumps(dict(record.headers)) for record in records],
                )
        committed = time.monotonic()
        if committed - started > SLOW_APPEND_S:  # consumers see nothing until the commit
            logger.warning(
                "a slow append: %.1f s (connection %.1f s, statement %.1f s)",
                committed - started,
                acquired - started,
                committed - acquired,
                extra={"topics": sorted({record.topic for record in records})},
            )
        return [
            Position(record.topic, partition, offset)
            for record, partition, offset in zip(records, partitions, offsets, strict=True)
        ]

    async def end_offsets(self, topic: str) -> dict[int, int]:
        await self.partitions(topic)
        rows = await self.pool.fetch(
            "select partition, next_offset from log.heads where topic = $1", topic
        )
        return {r["partition"]: r["next_offset"] for r in rows}

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        return EmbeddedConsumer(self, group, list(topics))

    async def replay(
        self,
        topic: str,
        *,
        from_offset: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
    ) -> AsyncIterator[StoredRecord]:
        ends = await self.end_offsets(topic)
        start = from_offset or 0
        async with self.pool.acquire() as conn, conn.transaction():
            cursor = conn.cursor(
                'select topic, partition, "offset", ts, key, value, headers::text'
                " from log.records r"
                " join unnest($2::int[], $3::bigint[]) as e(partition, end_offset)"
                "   using (partition)"
                ' where r.topic = $1 and r."offset" >= $4 and r."offset" < e.end_offset'
                "   and ($5::timestamptz is null or r.ts >= $5)"
                "   and ($6::timestamptz is null or r.ts < $6)"
                ' order by r.ts, r.partition, r."offset"',
                topic,
                list(ends),
                list(ends.values()),
                start,
                from_time,
                to_time,
                prefetch=1000,
            )
            async for row in cursor:
                yield _stored(row)

    # --- consumer groups -------------------------------------------------------------------

    async def heartbeat(
        self, group: str, member: str, topics: Sequence[str]
    ) -> list[tuple[str, set[str]]]:
        """Record `member` alive, drop members silent past the session timeout, and return the
        live members with their subscribed topics, sorted by member id. Joins and expiries
        notify the group so every member rebalances at once."""
        async with self.pool.acquire() as conn, conn.transaction():
            joined = await conn.fetchval(
                "insert into log.group_members values ($1, $2, $3, now())"
                " on conflict (group_id, member_id)"
                " do update set heartbeat = now(), topics = excluded.topics"
                " returning xmax = 0",
                group,
                member,
                list(topics),
            )
            expired = await conn.fetch(
                "delete from log.group_members where group_id = $1"
                " and heartbeat < now() - make_interval(secs => $2) returning member_id",
                group,
                self._session_timeout,
            )
            rows = await conn.fetch(
                "select member_id, topics from log.group_members where group_id = $1"
                " order by member_id",
                group,
            )
            if joined or expired:
                await conn.execute("select pg_notify($1, $2)", CHANNEL, GROUP_PREFIX + group)
        return [(r["member_id"], set(r["topics"])) for r in rows]

    async def leave(self, group: str, member: str) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "delete from log.group_members where group_id = $1 and member_id = $2",
                group,
                member,
            )
            await conn.execute("select pg_notify($1, $2)", CHANNEL, GROUP_PREFIX + group)

    async def committed(
        self, group: str, pairs: Sequence[tuple[str, int]]
    ) -> dict[tuple[str, int], int]:
        rows = await self.pool.fetch(
            "select topic, partition, next_offset from log.group_offsets"
            " where group_id = $1 and (topic, partition) in"
            " (select * from unnest($2::text[], $3::int[]))",
            group,
            [t for t, _ in pairs],
            [p for _, p in pairs],
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def commit(self, group: str, offsets: dict[tuple[str, int], int]) -> None:
        # greatest(): a member that lost a partition mid-batch never moves its offset back.
        await self.pool.execute(
            "insert into log.group_offsets"
            " select $1, * from unnest($2::text[], $3::int[], $4::bigint[])"
            " on conflict (group_id, topic, partition) do update"
            " set next_offset = greatest(log.group_offsets.next_offset, excluded.next_offset)",
            group,
            [t for t, _ in offsets],
            [p for _, p in offsets],
            list(offsets.values()),
        )

    async def fetch(
        self, positions: dict[tuple[str, int], int], per_partition: int
    ) -> list[StoredRecord]:
        rows = await self.pool.fetch(
            _FETCH,
            [t for t, _ in positions],
            [p for _, p in positions],
            list(positions.values()),
            per_partition,
        )
        return [_stored(r) for r in rows]


def _assign(
    members: list[tuple[str, set[str]]], me: str, topic_partitions: dict[str, int]
) -> set[tuple[str, int]]:
    """Round-robin each topic's partitions over the live members subscribed to it."""
    owned: set[tuple[str, int]] = set()
    for topic, count in topic_partitions.items():
        subscribers = [member for member, topics in members if topic in topics]
        if me not in subscribers:
            continue
        index = subscribers.index(me)
        owned |= {(topic, p) for p in range(count) if p % len(subscribers) == index}
    return owned


class EmbeddedConsumer(Consumer):
    def __init__(self, event_log: EmbeddedEventLog, group: str, topics: list[str]) -> None:
        self._event_log = event_log
        self._group = group
        self._topics = topics
        self._member = f"{uuid.uuid4()}"
        self._positions: dict[tuple[str, int], int] = {}
        self._last_heartbeat = 0.0
        self._wakeup = asyncio.Event()
        self._channels = [*topics, GROUP_PREFIX + group]
        self._joined = False

    def _notified(self, name: str) -> None:
        if name.startswith(GROUP_PREFIX):
            self._last_heartbeat = 0.0  # membership changed: rebalance on the next turn
        self._wakeup.set()

    def _heartbeat_due(self) -> bool:
        return time.monotonic() - self._last_heartbeat >= self._event_log.heartbeat_interval

    async def _rebalance(self) -> None:
        if not self._joined:
            self._event_log.listen(self._channels, self._notified)
            self._joined = True
        members = await self._event_log.heartbeat(self._group, self._member, self._topics)
        counts = {t: await self._event_log.partitions(t) for t in self._topics}
        owned = _assign(members, self._member, counts)
        added = [pair for pair in owned if pair not in self._positions]
        for pair in list(self._positions):
            if pair not in owned:
                del self._positions[pair]
        if added:
            committed = await self._event_log.committed(self._group, added)
            for pair in added:
                self._positions[pair] = committed.get(pair, 0)
        self._last_heartbeat = time.monotonic()

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[StoredRecord]:
        deadline = time.monotonic() + timeout
        while True:
            if self._heartbeat_due():
                await self._rebalance()
            # Clear before fetching: a notify that lands after the fetch still wakes the wait.
            self._wakeup.clear()
            if self._positions:
                per_partition = max(1, max_records // len(self._positions))
                records = await self._event_log.fetch(self._positions, per_partition)
                if records:
                    for r in records:
                        self._positions[(r.topic, r.partition)] = r.offset + 1
                    return records
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return []
            wait = min(remaining, self._event_log.heartbeat_interval)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), wait)

    async def commit(self, records: Sequence[StoredRecord]) -> None:
        offsets: dict[tuple[str, int], int] = {}
        for r in records:
            pair = (r.topic, r.partition)
            offsets[pair] = max(offsets.get(pair, 0), r.offset + 1)
        if offsets:
            await self._event_log.commit(self._group, offsets)

    async def assignment(self) -> set[tuple[str, int]]:
        if self._heartbeat_due():
            await self._rebalance()
        return set(self._positions)

    async def close(self) -> None:
        if self._joined:
            self._event_log.unlisten(self._channels, self._notified)
            await self._event_log.leave(self._group, self._member)
            self._joined = False

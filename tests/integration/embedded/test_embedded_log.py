"""Embedded-log specifics the shared contract cannot reach from outside."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import Record, TopicSpec


async def test_a_fault_inside_the_transaction_leaves_nothing_behind(pg_url: str) -> None:
    event_log = EmbeddedEventLog(pg_url)
    await event_log.start()
    try:
        await event_log.ensure_topics([TopicSpec("a", 2), TopicSpec("b", 2)])
        # A trigger fails the insert after the heads were advanced in the same transaction.
        conn = await asyncpg.connect(pg_url)
        await conn.execute(
            """
            create function log.refuse() returns trigger language plpgsql as $$
            begin
              if new.value = 'boom' then raise exception 'injected fault'; end if;
              return new;
            end $$;
            create trigger refuse before insert on log.records
              for each row execute function log.refuse();
            """
        )
        await conn.close()
        records = [Record("a", b"k", b"ok"), Record("b", b"k", b"ok"), Record("b", b"j", b"boom")]
        with pytest.raises(asyncpg.RaiseError):
            await event_log.append_atomic(records)
        assert sum((await event_log.end_offsets("a")).values()) == 0
        assert sum((await event_log.end_offsets("b")).values()) == 0
        assert [r async for r in event_log.replay("a", from_offset=0)] == []
    finally:
        await event_log.close()


async def test_consumers_wake_on_notify_instead_of_polling(pg_url: str) -> None:
    event_log = EmbeddedEventLog(pg_url, heartbeat_interval=5.0)
    await event_log.start()
    try:
        await event_log.ensure_topics([TopicSpec("t", 1)])
        consumer = event_log.consumer("g", ["t"])
        assert await consumer.poll(timeout=0.1) == []
        waiting = asyncio.create_task(consumer.poll(timeout=4.0))
        await asyncio.sleep(0.2)
        started = time.monotonic()
        await event_log.append([Record("t", b"k", b"v")])
        got = await waiting
        assert [r.value for r in got] == [b"v"]
        # Woken by NOTIFY, long before the 5 s heartbeat or the 4 s poll timeout.
        assert time.monotonic() - started < 1.0
        await consumer.close()
    finally:
        await event_log.close()

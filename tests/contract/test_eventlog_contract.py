"""One contract, every EventLog adapter: what services may rely on, whichever engine runs."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import pytest

from hartonomous.eventlog.port import Consumer, EventLog, EventLogError, Record, StoredRecord

NewTopic = Callable[..., Awaitable[str]]


def rec(topic: str, key: str, value: str) -> Record:
    return Record(topic, key.encode(), value.encode(), {"event_type": "Test"})


async def drain(consumer: Consumer, count: int, timeout: float = 30.0) -> list[StoredRecord]:
    """Poll until `count` records arrived (or fail after `timeout` seconds)."""
    got: list[StoredRecord] = []
    deadline = time.monotonic() + timeout
    while len(got) < count:
        assert time.monotonic() < deadline, f"only {len(got)} of {count} records arrived"
        got += await consumer.poll(max_records=500, timeout=0.5)
    return got


async def delivered(eventlog: EventLog, group: str, topics: list[str], count: int) -> list[bytes]:
    """The values a new consumer group receives, sorted: `count` of them, and whatever else
    arrives within a second more (what must not be there)."""
    consumer = eventlog.consumer(group, topics)
    try:
        got = await drain(consumer, count)
        got += await consumer.poll(timeout=1.0)
    finally:
        await consumer.close()
    return sorted(r.value for r in got)


async def test_topics_are_provisioned_idempotently(eventlog: EventLog, new_topic: NewTopic) -> None:
    topic = await new_topic(4)
    await eventlog.ensure_topics([])  # no-op
    assert (await eventlog.topics())[topic] == 4
    assert await eventlog.end_offsets(topic) == {0: 0, 1: 0, 2: 0, 3: 0}


async def test_append_returns_dense_offsets_and_keys_keep_their_partition(
    eventlog: EventLog, new_topic: NewTopic
) -> None:
    topic = await new_topic(3)
    positions = await eventlog.append([rec(topic, f"k{i % 5}", str(i)) for i in range(50)])
    by_key: dict[str, set[int]] = defaultdict(set)
    for i, pos in enumerate(positions):
        by_key[f"k{i % 5}"].add(pos.partition)
    assert all(len(parts) == 1 for parts in by_key.values())
    ends = await eventlog.end_offsets(topic)
    assert sum(ends.values()) == 50
    for partition, end in ends.items():
        offsets = sorted(p.offset for p in positions if p.partition == partition)
        assert offsets == list(range(end))


async def test_records_of_one_key_are_consumed_in_append_order(
    eventlog: EventLog, new_topic: NewTopic
) -> None:
    topic = await new_topic(3)
    for batch in range(4):
        await eventlog.append([rec(topic, f"k{i % 7}", f"{batch}:{i}") for i in range(50)])
    consumer = eventlog.consumer("g-order", [topic])
    try:
        got = await drain(consumer, 200)
    finally:
        await consumer.close()
    assert len(got) == 200
    sequences: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for r in got:
        batch, i = r.value.decode().split(":")
        sequences[r.key].append((int(batch), int(i)))
        assert r.headers["event_type"] == "Test"
        assert r.timestamp.tzinfo is not None
    for seq in sequences.values():
        assert seq == sorted(seq)


async def test_no_loss_across_consumer_restarts(eventlog: EventLog, new_topic: NewTopic) -> None:
    topic = await new_topic(2)
    await eventlog.append([rec(topic, f"k{i}", str(i)) for i in range(100)])
    first = eventlog.consumer("g-restart", [topic])
    handled = await drain(first, 100)
    # Crash after handling everything but committing only the first 40 per the log's order.
    await first.commit(handled[:40])
    await first.close()
    await eventlog.append([rec(topic, f"k{i}", str(i)) for i in range(100, 150)])

    second = eventlog.consumer("g-restart", [topic])
    try:
        redelivered = await drain(second, 150 - 40)
    finally:
        await second.close()
    committed_values = {r.value for r in handled[:40]}
    seen = committed_values | {r.value for r in redelivered}
    assert seen == {str(i).encode() for i in range(150)}


async def test_group_members_split_partitions_and_take_over_on_leave(
    eventlog: EventLog, new_topic: NewTopic
) -> None:
    topic = await new_topic(4)
    await eventlog.append([rec(topic, f"k{i}", str(i)) for i in range(40)])
    one = eventlog.consumer("g-split", [topic])
    two = eventlog.consumer("g-split", [topic])
    everything = {(topic, p) for p in range(4)}
    try:
        # Both members poll until they hold disjoint, non-empty shares covering every partition.
        deadline = time.monotonic() + 60
        received: list[StoredRecord] = []
        while True:
            received += await one.poll(timeout=0.2)
            received += await two.poll(timeout=0.2)
            a, b = await one.assignment(), await two.assignment()
            if a and b and not (a & b) and a | b == everything:
                break
            assert time.monotonic() < deadline, f"no balanced assignment: {a} / {b}"
        await one.commit(received)
        await two.commit(received)
        await two.close()
        deadline = time.monotonic() + 60
        while await one.assignment() != everything:
            await one.poll(timeout=0.2)
            assert time.monotonic() < deadline, "the remaining member never got every partition"
        await eventlog.append([rec(topic, f"k{i}", str(i)) for i in range(40, 60)])
        later = await drain(one, 20)
        assert {r.value for r in later} >= {str(i).encode() for i in range(40, 60)}
    finally:
        await one.close()
        await two.close()


async def test_atomic_append_is_all_or_nothing(eventlog: EventLog, new_topic: NewTopic) -> None:
    orders, usage = await new_topic(2), await new_topic(2)
    positions = await eventlog.append_atomic([rec(orders, "a", "op"), rec(usage, "a", "meter")])
    assert [p.topic for p in positions] == [orders, usage]
    with pytest.raises(EventLogError):
        await eventlog.append_atomic(
            [rec(orders, "b", "op"), rec(usage, "b", "meter"), rec("no-such-topic", "b", "x")]
        )
    # Only the first transaction is ever delivered (Kafka may spend offsets on an aborted one).
    assert await delivered(eventlog, "g-atomic", [orders, usage], 2) == [b"meter", b"op"]


async def test_an_atomic_append_given_up_on_is_never_visible(
    eventlog: EventLog, new_topic: NewTopic
) -> None:
    """`within` too short for any engine: the caller hears EventLogError at once, the
    transaction is rolled back (or aborted on Kafka's worker thread), and the next append
    goes through."""
    orders, usage = await new_topic(2), await new_topic(2)
    await eventlog.append([rec(orders, "warm", "up")])  # topics known: the bound hits the write
    with pytest.raises(EventLogError, match="not committed within"):
        await eventlog.append_atomic(
            [rec(orders, "a", "late"), rec(usage, "a", "late")], within=1e-6
        )
    await eventlog.append_atomic([rec(orders, "b", "op"), rec(usage, "b", "meter")], within=30)
    assert await delivered(eventlog, "g-within", [orders, usage], 3) == [b"meter", b"op", b"up"]


async def test_replay_windows_by_offset_and_time(eventlog: EventLog, new_topic: NewTopic) -> None:
    topic = await new_topic(2)
    await eventlog.append([rec(topic, f"k{i}", f"early{i}") for i in range(10)])
    await asyncio.sleep(0.3)
    t1 = datetime.now(UTC)
    await asyncio.sleep(0.3)
    await eventlog.append([rec(topic, f"k{i}", f"middle{i}") for i in range(10)])
    await asyncio.sleep(0.3)
    t2 = datetime.now(UTC)
    await asyncio.sleep(0.3)
    await eventlog.append([rec(topic, f"k{i}", f"late{i}") for i in range(10)])

    everything = [r async for r in eventlog.replay(topic, from_offset=0)]
    assert len(everything) == 30
    stamps = [(r.timestamp, r.partition, r.offset) for r in everything]
    assert stamps == sorted(stamps)

    window = [r.value.decode() async for r in eventlog.replay(topic, from_time=t1, to_time=t2)]
    assert sorted(window) == sorted(f"middle{i}" for i in range(10))

    tail = [r.value.decode() async for r in eventlog.replay(topic, from_time=t2)]
    assert sorted(tail) == sorted(f"late{i}" for i in range(10))

    skipped = [r async for r in eventlog.replay(topic, from_offset=5)]
    ends = await eventlog.end_offsets(topic)
    assert len(skipped) == sum(max(0, end - 5) for end in ends.values())


async def test_replay_stops_at_the_end_seen_at_the_call(
    eventlog: EventLog, new_topic: NewTopic
) -> None:
    topic = await new_topic(1)
    assert [r async for r in eventlog.replay(topic, from_offset=0)] == []
    await eventlog.append([rec(topic, "k", str(i)) for i in range(5)])
    seen = 0
    async for _ in eventlog.replay(topic, from_offset=0):
        if seen == 0:
            await eventlog.append([rec(topic, "k", "appended during replay")])
        seen += 1
    assert seen == 5


async def test_concurrent_producers_lose_nothing_and_keep_key_order(
    eventlog: EventLog, new_topic: NewTopic
) -> None:
    topic = await new_topic(3)

    async def produce(worker: int) -> None:
        for batch in range(10):
            await eventlog.append([rec(topic, f"w{worker}", f"{batch}:{i}") for i in range(10)])

    await asyncio.gather(*(produce(w) for w in range(4)))
    got = [r async for r in eventlog.replay(topic, from_offset=0)]
    assert len(got) == 400
    per_key: dict[bytes, list[tuple[int, int]]] = defaultdict(list)
    for r in sorted(got, key=lambda r: (r.partition, r.offset)):
        batch, i = r.value.decode().split(":")
        per_key[r.key].append((int(batch), int(i)))
    assert {k: len(v) for k, v in per_key.items()} == {f"w{w}".encode(): 100 for w in range(4)}
    for seq in per_key.values():
        assert seq == sorted(seq)


async def test_unknown_topic_is_a_typed_error(eventlog: EventLog) -> None:
    with pytest.raises(EventLogError):
        await eventlog.append([rec("never-provisioned", "k", "v")])

"""Kafka-adapter specifics that the shared contract cannot reach: open transactions, Java-compatible
partitioning, LogAppendTime replay windows, pipelined appends. Runs against a real broker."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # ConfigResource: not re-exported
    AdminClient,
    ConfigResource,
)

from hartonomous.eventlog.kafka import KafkaEventLog
from hartonomous.eventlog.partitioner import murmur2, partition_for
from hartonomous.eventlog.port import (
    EventLogError,
    Record,
    StoredRecord,
    TopicSpec,
    UnknownTopicError,
)
from tests.support.kafka_broker import kafka_bootstrap

# Computed with the Java client (org.apache.kafka.common.utils.Utils.murmur2 of the UTF-8 bytes;
# the first six are the vectors of Kafka's own UtilsTest).
JAVA_MURMUR2 = {
    "21": -973932308,
    "foobar": -790332482,
    "a-little-bit-long-string": -985981536,
    "a-little-bit-longer-string": -1486304829,
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    "abc": 479470107,
    "": 275646681,
    "tenant-42": -578463882,
    "atom:sha256:00ff": -547747387,
}
# Java's DefaultPartitioner: toPositive(murmur2(key)) % partitions, for 6 and 7 partitions.
JAVA_PARTITION = {
    "21": (0, 3),
    "foobar": (0, 0),
    "a-little-bit-long-string": (2, 1),
    "a-little-bit-longer-string": (5, 0),
    "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": (5, 3),
    "abc": (3, 4),
    "": (3, 2),
    "tenant-42": (2, 6),
    "atom:sha256:00ff": (1, 4),
}


_created: list[str] = []


@pytest.fixture
async def event_log() -> AsyncIterator[KafkaEventLog]:
    event_log = KafkaEventLog(
        kafka_bootstrap(),
        client_id=f"test-{uuid.uuid4().hex[:8]}",
        session_timeout_ms=6_000,
        heartbeat_interval_ms=500,
    )
    await event_log.start()
    try:
        yield event_log
    finally:
        await event_log.close()
        # The local broker outlives the suite: leave no test topics piling up in it.
        if _created:
            admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
            for future in admin.delete_topics(_created, operation_timeout=30).values():
                future.result(timeout=60)
            _created.clear()


async def new_topic(event_log: KafkaEventLog, partitions: int) -> str:
    name = f"kafka-{uuid.uuid4().hex[:12]}"
    await event_log.ensure_topics([TopicSpec(name, partitions)])
    _created.append(name)
    return name


def rec(topic: str, key: str, value: str) -> Record:
    return Record(topic, key.encode(), value.encode(), {"event_type": "Test", "note": "ünïcode"})


async def drain(
    event_log: KafkaEventLog, group: str, topic: str, settle: float = 1.5
) -> list[bytes]:
    """Everything a fresh read_committed group member sees within `settle` seconds of quiet."""
    consumer = event_log.consumer(group, [topic])
    got: list[StoredRecord] = []
    try:
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < settle:
            batch = await consumer.poll(timeout=0.2)
            if batch:
                got += batch
                quiet_since = time.monotonic()
    finally:
        await consumer.close()
    return [r.value for r in got]


async def collect(records: AsyncIterator[StoredRecord]) -> list[StoredRecord]:
    return [r async for r in records]


def raw_transactional_producer() -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": kafka_bootstrap(),
            "transactional.id": f"test-raw-{uuid.uuid4()}",
            "partitioner": "murmur2_random",
        }
    )
    producer.init_transactions(30)
    return producer


async def test_an_open_transaction_is_invisible_until_it_commits(event_log: KafkaEventLog) -> None:
    topic = await new_topic(event_log, 2)
    producer = raw_transactional_producer()
    producer.begin_transaction()
    for i in range(5):
        producer.produce(topic, f"pending{i}".encode(), f"k{i}".encode())
    assert producer.flush(30) == 0

    # The records sit in the log (the high watermark moved) but are not committed yet.
    assert sum((await event_log.end_offsets(topic)).values()) == 5
    # Replay stops at the last stable offset instead of waiting for the transaction.
    assert [r async for r in event_log.replay(topic, from_offset=0)] == []
    consumer = event_log.consumer(f"g-{uuid.uuid4().hex}", [topic])
    try:
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            assert await consumer.poll(timeout=0.2) == []

        await asyncio.to_thread(producer.commit_transaction, 30)
        seen: list[StoredRecord] = []
        deadline = time.monotonic() + 30
        while len(seen) < 5 and time.monotonic() < deadline:
            seen += await consumer.poll(timeout=0.2)
    finally:
        await consumer.close()
    assert sorted(r.value for r in seen) == sorted(f"pending{i}".encode() for i in range(5))
    replayed = [r.value async for r in event_log.replay(topic, from_offset=0)]
    assert sorted(replayed) == sorted(r.value for r in seen)


async def test_an_aborted_transaction_is_never_visible(event_log: KafkaEventLog) -> None:
    topic = await new_topic(event_log, 3)
    producer = raw_transactional_producer()
    producer.begin_transaction()
    for i in range(6):
        producer.produce(topic, f"aborted{i}".encode(), f"k{i}".encode())
    assert producer.flush(30) == 0
    await asyncio.to_thread(producer.abort_transaction, 30)

    # Every partition now holds only aborted records and a marker; replay must still end.
    assert await asyncio.wait_for(collect(event_log.replay(topic, from_offset=0)), 30) == []
    await event_log.append([rec(topic, "k0", "kept")])
    assert await drain(event_log, f"g-{uuid.uuid4().hex}", topic) == [b"kept"]
    assert [r.value async for r in event_log.replay(topic, from_offset=0)] == [b"kept"]


async def test_a_failed_atomic_append_is_aborted_and_the_log_stays_usable(
    event_log: KafkaEventLog,
) -> None:
    topic = await new_topic(event_log, 2)
    too_large = Record(topic, b"k", b"x" * 2_000_000)  # over the broker's 1 MB record limit
    with pytest.raises(EventLogError):
        await event_log.append_atomic(
            [rec(topic, "a", "first"), too_large, rec(topic, "b", "last")]
        )
    positions = await event_log.append_atomic([rec(topic, "c", "next"), rec(topic, "d", "other")])
    assert [p.topic for p in positions] == [topic, topic]
    assert sorted(await drain(event_log, f"g-{uuid.uuid4().hex}", topic)) == [b"next", b"other"]


async def test_atomic_appends_from_concurrent_tasks_all_commit(event_log: KafkaEventLog) -> None:
    orders, usage = await new_topic(event_log, 2), await new_topic(event_log, 2)
    await asyncio.gather(
        *(
            event_log.append_atomic(
                [rec(orders, f"o{i}", f"op{i}"), rec(usage, f"o{i}", f"use{i}")]
            )
            for i in range(10)
        )
    )
    assert len(await drain(event_log, f"g-{uuid.uuid4().hex}", orders)) == 10
    assert len(await drain(event_log, f"g-{uuid.uuid4().hex}", usage)) == 10


def test_murmur2_matches_the_java_client() -> None:
    for key, expected in JAVA_MURMUR2.items():
        # Java returns a signed int; the Python port returns the same 32 bits unsigned.
        assert murmur2(key.encode()) == expected & 0xFFFFFFFF, key


async def test_keys_land_in_the_partition_the_java_client_picks(event_log: KafkaEventLog) -> None:
    six, seven = await new_topic(event_log, 6), await new_topic(event_log, 7)
    keys = list(JAVA_PARTITION)
    on_six = await event_log.append([rec(six, key, "v") for key in keys])
    on_seven = await event_log.append([rec(seven, key, "v") for key in keys])
    placed = {k: (a.partition, b.partition) for k, a, b in zip(keys, on_six, on_seven, strict=True)}
    assert placed == JAVA_PARTITION
    many = [f"aggregate-{i}" for i in range(300)]
    positions = await event_log.append([rec(six, key, "v") for key in many])
    assert [p.partition for p in positions] == [partition_for(k.encode(), 6) for k in many]


async def test_replay_by_log_append_time(event_log: KafkaEventLog) -> None:
    topic = await new_topic(event_log, 3)
    before = datetime.now(UTC)
    await event_log.append([rec(topic, f"k{i}", f"early{i}") for i in range(9)])
    await asyncio.sleep(0.2)
    t1 = datetime.now(UTC)
    await asyncio.sleep(0.2)
    await event_log.append([rec(topic, f"k{i}", f"middle{i}") for i in range(9)])
    await asyncio.sleep(0.2)
    t2 = datetime.now(UTC)
    await asyncio.sleep(0.2)
    await event_log.append([rec(topic, f"k{i}", f"late{i}") for i in range(9)])

    everything = [r async for r in event_log.replay(topic)]
    assert len(everything) == 27
    assert [(r.timestamp, r.partition, r.offset) for r in everything] == sorted(
        (r.timestamp, r.partition, r.offset) for r in everything
    )
    # Timestamps are the broker's (LogAppendTime), timezone-aware, in milliseconds.
    assert all(r.timestamp.tzinfo is not None for r in everything)
    assert all(before - timedelta(seconds=5) < r.timestamp < t1 for r in everything[:9])
    assert everything[0].headers == {"event_type": "Test", "note": "ünïcode"}

    window = [r.value.decode() async for r in event_log.replay(topic, from_time=t1, to_time=t2)]
    assert sorted(window) == sorted(f"middle{i}" for i in range(9))
    until = [r.value.decode() async for r in event_log.replay(topic, to_time=t1)]
    assert sorted(until) == sorted(f"early{i}" for i in range(9))
    future = datetime.now(UTC) + timedelta(hours=1)
    assert [r async for r in event_log.replay(topic, from_time=future)] == []


async def test_one_large_append_is_pipelined(event_log: KafkaEventLog) -> None:
    topic = await new_topic(event_log, 6)
    payload = b"x" * 1024
    records = [Record(topic, f"key-{i}".encode(), payload) for i in range(10_000)]
    started = time.perf_counter()
    positions = await event_log.append(records)
    elapsed = time.perf_counter() - started
    assert len(positions) == 10_000
    assert sum((await event_log.end_offsets(topic)).values()) == 10_000
    # One round trip per record would take far longer than this on any machine.
    assert elapsed < 10, f"10k appends took {elapsed:.2f}s"


async def test_poll_returns_what_is_there_without_waiting_out_its_timeout(
    event_log: KafkaEventLog,
) -> None:
    topic = await new_topic(event_log, 1)
    consumer = event_log.consumer(f"g-{uuid.uuid4().hex}", [topic])
    try:
        assert await consumer.poll(timeout=0.5) == []  # joins the group
        await event_log.append([rec(topic, "k", str(i)) for i in range(3)])
        started = time.monotonic()
        got = await consumer.poll(max_records=500, timeout=20)
        assert time.monotonic() - started < 10
        assert got
    finally:
        await consumer.close()


async def test_a_cancelled_poll_loses_nothing(event_log: KafkaEventLog) -> None:
    topic = await new_topic(event_log, 1)
    consumer = event_log.consumer(f"g-{uuid.uuid4().hex}", [topic])
    try:
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(consumer.poll(timeout=3.0), 0.2)
        await event_log.append([rec(topic, "k", str(i)) for i in range(5)])
        got: list[StoredRecord] = []
        deadline = time.monotonic() + 30
        while len(got) < 5 and time.monotonic() < deadline:
            got += await consumer.poll(timeout=0.5)
        assert [r.value for r in got] == [str(i).encode() for i in range(5)]
    finally:
        await consumer.close()


async def test_unknown_topics_are_typed_errors(event_log: KafkaEventLog) -> None:
    missing = f"missing-{uuid.uuid4().hex[:8]}"
    with pytest.raises(UnknownTopicError):
        await event_log.append([rec(missing, "k", "v")])
    with pytest.raises(UnknownTopicError):
        await event_log.append_atomic([rec(missing, "k", "v")])
    with pytest.raises(UnknownTopicError):
        await event_log.end_offsets(missing)
    with pytest.raises(UnknownTopicError):
        _ = [r async for r in event_log.replay(missing)]
    consumer = event_log.consumer("g-missing", [missing])
    try:
        with pytest.raises(UnknownTopicError):
            await consumer.poll(timeout=0.1)
    finally:
        await consumer.close()


async def test_ensure_topics_sets_infinite_retention_and_keeps_existing_topics(
    event_log: KafkaEventLog,
) -> None:
    topic = await new_topic(event_log, 2)
    await event_log.ensure_topics([TopicSpec(topic, 5)])  # exists: left as it is
    assert (await event_log.topics())[topic] == 2
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap()})
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    entries = admin.describe_configs([resource])[resource].result(timeout=30)
    assert entries["retention.ms"].value == "-1"
    assert entries["retention.bytes"].value == "-1"
    assert entries["message.timestamp.type"].value == "LogAppendTime"
    with pytest.raises(ValueError):
        await event_log.ensure_topics([TopicSpec(f"bad-{uuid.uuid4().hex[:8]}", 0)])


async def test_an_unreachable_broker_fails_start_clearly() -> None:
    event_log = KafkaEventLog("127.0.0.1:1", request_timeout=2.0)
    with pytest.raises(EventLogError, match="cannot reach Kafka"):
        await event_log.start()
    await event_log.close()


async def test_a_closed_consumer_refuses_to_poll(event_log: KafkaEventLog) -> None:
    topic = await new_topic(event_log, 1)
    consumer = event_log.consumer(f"g-{uuid.uuid4().hex}", [topic])
    await consumer.poll(timeout=0.1)
    await consumer.close()
    await consumer.close()  # idempotent
    with pytest.raises(EventLogError, match="closed"):
        await consumer.poll(timeout=0.1)

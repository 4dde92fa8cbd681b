"""The production event log: Apache Kafka through confluent-kafka (librdkafka).

librdkafka is synchronous, so nothing here blocks the event loop: the shared producer is served
by one poller thread whose delivery reports resolve asyncio futures (one wake-up per `append`,
not per record), and every blocking call (metadata, transactions, consumer polls) runs on a
worker thread. A consumer is confined to its own thread, because closing a librdkafka consumer
while another thread polls it is unsafe.

Kafka settings that make the port's promises hold: an idempotent producer with acks=all (no
duplicates or reordering on retries), the murmur2 partitioner (the Java client's, and the
embedded log's, so a key maps to the same partition everywhere), read_committed consumers (an
`append_atomic` is seen whole or not at all), manual commits, and topics with infinite retention
and LogAppendTime (a record's timestamp is when the log accepted it, as the port says).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, TypeVar

from confluent_kafka import Consumer as _LibConsumer
from confluent_kafka import (
    IsolationLevel,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import (  # type: ignore[attr-defined]  # OffsetSpec: not re-exported
    AdminClient,
    OffsetSpec,
)
from confluent_kafka.cimpl import NewTopic

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

T = TypeVar("T")

logger = logging.getLogger(__name__)
# librdkafka's own log lines, routed through logging instead of raw stderr.
_LIBRDKAFKA_LOG = logging.getLogger(f"{__name__}.librdkafka")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The log is the ledger: nothing expires, and timestamps are the broker's.
_TOPIC_CONFIG = {
    "retention.ms": "-1",
    "retention.bytes": "-1",
    "message.timestamp.type": "LogAppendTime",
}
_UNKNOWN_TOPIC = {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
# Answers a freshly created partition gives until its leader has loaded it.
_NOT_READY = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
}
# A commit refused because the group is rebalancing: the partitions' next owner re-reads from
# the last commit, which at-least-once delivery allows, so these are not errors of the caller.
_REBALANCING = {
    KafkaError.REBALANCE_IN_PROGRESS,
    KafkaError.ILLEGAL_GENERATION,
    KafkaError.UNKNOWN_MEMBER_ID,
    KafkaError._ASSIGNMENT_LOST,
}
_LATEST: OffsetSpec = OffsetSpec.latest()  # type: ignore[no-untyped-call]  # untyped upstream
_REPLAY_BUFFER = 5000  # records held per partition while replay waits for a slower partition
_FLUSH_SLICE_S = 0.05  # how often a transaction waiting on deliveries checks whether to give up


def _started(client: T | None) -> T:
    if client is None:
        raise EventLogError("the Kafka event log is not started")
    return client


def _kafka_error(exc: BaseException) -> KafkaError | None:
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0]
    return None


def _log_error(what: str, error: KafkaException | KafkaError) -> EventLogError:
    err = error if isinstance(error, KafkaError) else _kafka_error(error)
    if err is None:
        return EventLogError(f"{what}: {error}")
    kind = UnknownTopicError if err.code() in _UNKNOWN_TOPIC else EventLogError
    return kind(f"{what}: {err.str()} ({err.name()})")


def _produce(
    producer: Producer, record: Record, on_delivery: Callable[[KafkaError | None, Message], None]
) -> bool:
    """Queue one record; False when the producer's local queue is full (drain it, retry)."""
    try:
        producer.produce(
            record.topic,
            record.value,
            record.key,
            on_delivery=on_delivery,
            headers=dict(record.headers),
        )
    except BufferError:
        return False
    return True


def _position(topic: str, message: Message) -> Position:
    partition, offset = message.partition(), message.offset()
    assert partition is not None and offset is not None  # set on every delivered record
    return Position(topic, partition, offset)


def _all_delivered(positions: list[Position | None]) -> list[Position]:
    delivered = [p for p in positions if p is not None]
    if len(delivered) != len(positions):
        raise EventLogError("a record was acknowledged without its position")
    return delivered


def _headers(
    raw: Mapping[str, str | bytes | None] | Sequence[tuple[str, str | bytes | None]],
) -> dict[str, str]:
    pairs = raw.items() if isinstance(raw, Mapping) else raw
    return {
        name: value.decode("utf-8", "replace") if isinstance(value, bytes) else value or ""
        for name, value in pairs
    }


def _stored(message: Message) -> StoredRecord:
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    assert topic is not None and partition is not None and offset is not None  # fetched record
    _, millis = message.timestamp()
    return StoredRecord(
        topic=topic,
        partition=partition,
        offset=offset,
        timestamp=_EPOCH + timedelta(milliseconds=max(millis, 0)),
        key=message.key() or b"",
        value=message.value() or b"",
        headers=_headers(message.headers() or []),
    )


def _millis(moment: datetime, *, round_up: bool = False) -> int:
    """Kafka timestamps are whole milliseconds since the epoch."""
    millis = (moment - _EPOCH) / timedelta(milliseconds=1)
    return math.ceil(millis) if round_up else math.floor(millis)


def _records(messages: Iterable[Message]) -> list[StoredRecord]:
    """Fetched records; error events are logged (librdkafka retries them) unless fatal."""
    records = []
    for message in messages:
        err = message.error()
        if err is None:
            records.append(_stored(message))
        elif err.fatal():
            raise _log_error("the consumer failed", err)
        else:
            logger.warning("kafka consumer: %s", err.str())
    return records


class _Delivery:
    """Collects the delivery reports of one `append` (they arrive on the poller thread) and
    wakes the waiting task once, when the last one is in."""

    def __init__(self, loop: asyncio.AbstractEventLoop, topics: list[str]) -> None:
        self._loop = loop
        self._topics = topics
        self.future: asyncio.Future[None] = loop.create_future()
        self.positions: list[Position | None] = [None] * len(topics)
        self.error: KafkaError | None = None
        self._lock = threading.Lock()
        self._delivered = 0
        self._expected: int | None = None

    def report(self, index: int, err: KafkaError | None, message: Message) -> None:
        if err is not None:
            if self.error is None:
                self.error = err
        else:
            self.positions[index] = _position(self._topics[index], message)
        with self._lock:
            self._delivered += 1
            finished = self._delivered == self._expected
        if finished:
            self._loop.call_soon_threadsafe(self._settle)

    def expect(self, count: int) -> None:
        """Called on the loop once `count` records were handed to the producer."""
        with self._lock:
            self._expected = count
            finished = self._delivered == count
        if finished:
            self._settle()

    def _settle(self) -> None:
        if not self.future.done():
            self.future.set_result(None)


class _Reader:
    """A librdkafka consumer confined to one thread of its own."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.consumer = _LibConsumer(config, logger=_LIBRDKAFKA_LOG)
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="kafka-consumer")
        self._closed = False

    def submit(self, fn: Callable[[], T]) -> asyncio.Future[T]:
        if self._closed:
            raise EventLogError("the consumer is closed")
        return asyncio.get_running_loop().run_in_executor(self._thread, fn)

    async def call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return await self.submit(fn)
        except KafkaException as exc:
            raise _log_error(what, exc) from exc

    def fetch(self, max_records: int, timeout: float) -> list[Message]:
        """Wait up to `timeout` for one record, then take what else is already fetched: a full
        batch never waits for stragglers (`consume` alone would wait out its timeout)."""
        first = self.consumer.poll(timeout)
        if first is None:
            return []
        if max_records <= 1:
            return [first]
        return [first, *self.consumer.consume(max_records - 1, 0)]

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True  # refuses new calls; one already queued (a poll) runs first
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self.consumer.close)
        except KafkaException as exc:
            raise _log_error("closing a consumer", exc) from exc
        finally:
            self._thread.shutdown(wait=False)


class KafkaConsumer(Consumer):
    """A group member: read_committed, no auto-commit, offsets committed by `commit` only."""

    def __init__(
        self, event_log: KafkaEventLog, group: str, topics: list[str], config: dict[str, Any]
    ) -> None:
        self._event_log = event_log
        self._group = group
        self._topics = topics
        self._reader = _Reader(config)
        self._subscribed = False
        self._inflight: asyncio.Future[list[Message]] | None = None

    async def _subscribe(self) -> None:
        if self._subscribed:
            return
        for topic in self._topics:
            await self._event_log.partitions(topic)
        consumer = self._reader.consumer
        await self._reader.call("subscribing", partial(consumer.subscribe, self._topics))
        self._subscribed = True

    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[StoredRecord]:
        await self._subscribe()
        # A cancelled poll leaves its fetch running and the next poll returns its records:
        # librdkafka hands each record out once, so dropping them would skip them for good.
        if self._inflight is None:
            self._inflight = self._reader.submit(
                partial(self._reader.fetch, max(1, max_records), timeout)
            )
        try:
            messages = await asyncio.shield(self._inflight)
        except Exception as exc:  # the fetch failed (a cancellation is a BaseException)
            self._inflight = None
            if isinstance(exc, KafkaException):
                raise _log_error(f"polling group {self._group!r}", exc) from exc
            raise
        self._inflight = None
        return _records(messages)

    async def commit(self, records: Sequence[StoredRecord]) -> None:
        """Commit offset+1 of the last record per partition, synchronously."""
        offsets: dict[tuple[str, int], int] = {}
        for r in records:
            offsets[(r.topic, r.partition)] = max(
                offsets.get((r.topic, r.partition), 0), r.offset + 1
            )
        if offsets:
            partitions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            await self._reader.call(
                f"committing group {self._group!r}", partial(self._commit, partitions)
            )

    def _commit(self, partitions: list[TopicPartition]) -> None:
        try:
            results = self._reader.consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            err = _kafka_error(exc)
            if err is None or err.code() not in _REBALANCING:
                raise
            logger.warning("group %s: commit skipped during a rebalance: %s", self._group, err)
            return
        for tp in results:
            if tp.error is None:
                continue
            if tp.error.code() not in _REBALANCING:
                raise KafkaException(tp.error)
            logger.warning(
                "group %s: %s[%d] not committed: %s", self._group, tp.topic, tp.partition, tp.error
            )

    async def assignment(self) -> set[tuple[str, int]]:
        owned = await self._reader.call("reading the assignment", self._reader.consumer.assignment)
        return {(tp.topic, tp.partition) for tp in owned}

    async def close(self) -> None:
        self._event_log.forget(self)
        await self._reader.close()


class _Merge:
    """Replay's ordering: the buffered records of every partition, released by
    (timestamp, partition, offset) once each unfinished partition has one to compare."""

    def __init__(
        self,
        ranges: Mapping[int, tuple[int, int]],
        from_time: datetime | None,
        to_time: datetime | None,
    ) -> None:
        self._end = {p: end for p, (_, end) in ranges.items()}
        self._open = set(ranges)
        self._buffers: dict[int, deque[StoredRecord]] = {p: deque() for p in ranges}
        self._paused: set[int] = set()
        self._from = from_time
        self._to = to_time

    @property
    def finished(self) -> bool:
        return not self._open and not any(self._buffers.values())

    def add(self, messages: Iterable[Message]) -> int:
        """Take fetched messages; returns how many moved a partition forward."""
        progress = 0
        for message in messages:
            partition, offset = message.partition(), message.offset()
            if partition not in self._open or offset is None:
                continue
            err = message.error()
            if err is not None:
                # End of the partition; under read_committed this is past aborted records and
                # transaction markers, which are never delivered.
                if err.code() == KafkaError._PARTITION_EOF:
                    if offset >= self._end[partition]:
                        self._open.discard(partition)
                        progress += 1
                elif err.fatal():
                    raise _log_error("replay failed", err)
                else:
                    logger.warning("kafka replay: %s", err.str())
                continue
            progress += 1
            if offset >= self._end[partition] - 1:
                self._open.discard(partition)
            if offset < self._end[partition]:
                record = _stored(message)
                after_start = self._from is None or record.timestamp >= self._from
                if after_start and (self._to is None or record.timestamp < self._to):
                    self._buffers[partition].append(record)
        return progress

    def ready(self) -> Iterator[StoredRecord]:
        while all(self._buffers[p] for p in self._open):
            heads = [b[0] for b in self._buffers.values() if b]
            if not heads:
                return
            first = min(heads, key=lambda r: (r.timestamp, r.partition, r.offset))
            yield self._buffers[first.partition].popleft()

    def flow(self) -> tuple[list[int], list[int]]:
        """Partitions to pause (finished, or far ahead of the others) and to resume."""
        pause = [
            p
            for p, buffer in self._buffers.items()
            if p not in self._paused and (p not in self._open or len(buffer) >= _REPLAY_BUFFER)
        ]
        resume = [
            p
            for p in self._paused
            if p in self._open and len(self._buffers[p]) < _REPLAY_BUFFER // 2
        ]
        self._paused = (self._paused | set(pause)) - set(resume)
        return pause, resume


class KafkaEventLog(EventLog):
    """The event log on a Kafka cluster at `bootstrap` ("host:port,...").

    Consumer groups heartbeat every second, so joins and leaves rebalance within about a
    second, and a crashed member's partitions move after `session_timeout_ms`; tests may
    shorten both. `linger_ms` trades a few milliseconds of append latency for batching.
    `config` holds extra librdkafka settings for every client (security.protocol, sasl.*,
    ssl.*), applied last.
    """

    def __init__(
        self,
        bootstrap: str,
        client_id: str = "hartonomous",
        *,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 1_000,
        max_poll_interval_ms: int = 300_000,
        assignment_strategy: str = "cooperative-sticky",
        linger_ms: int = 5,
        compression: str = "lz4",
        delivery_timeout_ms: int = 120_000,
        transaction_timeout_ms: int = 60_000,
        request_timeout: float = 30.0,
        config: Mapping[str, str | int | float | bool] | None = None,
    ) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._timeout = request_timeout
        self._config: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            "client.id": client_id,
            **(config or {}),
        }
        producing = {
            "enable.idempotence": True,
            "acks": "all",
            "partitioner": "murmur2_random",
            "compression.type": compression,
            "linger.ms": linger_ms,
            "delivery.timeout.ms": delivery_timeout_ms,
        }
        self._producer_config = {**producing, **self._config}
        self._txn_config = {
            **self._producer_config,
            "transaction.timeout.ms": transaction_timeout_ms,
            # librdkafka refuses a record timeout longer than its transaction's.
            "delivery.timeout.ms": min(delivery_timeout_ms, transaction_timeout_ms),
        }
        self._group_config = {
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": assignment_strategy,
            "session.timeout.ms": session_timeout_ms,
            "heartbeat.interval.ms": heartbeat_interval_ms,
            "max.poll.interval.ms": max_poll_interval_ms,
            **self._config,
        }
        self._admin: AdminClient | None = None
        self._producer: Producer | None = None
        self._poller: threading.Thread | None = None
        self._stopping = threading.Event()
        self._txn_producer: Producer | None = None
        self._txn_lock = asyncio.Lock()
        self._executor: ThreadPoolExecutor | None = None
        self._known: set[str] = set()
        self._consumers: set[KafkaConsumer] = set()

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._executor = ThreadPoolExecutor(4, thread_name_prefix="kafka-log")
        self._admin = AdminClient(self._config)
        try:
            self._known = set(await self._topics())
        except EventLogError as exc:
            raise EventLogError(f"cannot reach Kafka at {self._bootstrap}: {exc}") from exc
        self._producer = Producer(self._producer_config, logger=_LIBRDKAFKA_LOG)
        self._stopping.clear()
        self._poller = threading.Thread(
            target=self._serve, args=(self._producer,), name="kafka-producer-poll", daemon=True
        )
        self._poller.start()

    def _serve(self, producer: Producer) -> None:
        """Run delivery callbacks (and librdkafka logs) as reports come in."""
        while not self._stopping.is_set():
            producer.poll(0.1)

    async def close(self) -> None:
        for consumer in list(self._consumers):
            await consumer.close()
        if self._producer is not None:
            left = await self._run(partial(self._producer.flush, self._timeout))
            if left:
                logger.warning("kafka: %d records still undelivered at close", left)
            self._stopping.set()
            if self._poller is not None:
                await self._run(self._poller.join)
            await self._run(self._producer.close)
            self._producer = self._poller = None
        async with self._txn_lock:  # lets a running transaction finish first
            if self._txn_producer is not None:
                await self._run(self._txn_producer.close)
                self._txn_producer = None
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None
        self._admin = None

    def forget(self, consumer: KafkaConsumer) -> None:
        self._consumers.discard(consumer)

    # --- plumbing --------------------------------------------------------------------------

    async def _run(self, fn: Callable[[], T], what: str = "kafka") -> T:
        executor = _started(self._executor)
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn)
        except KafkaException as exc:
            raise _log_error(what, exc) from exc

    async def _metadata(self, topic: str | None = None) -> dict[str, list[int]]:
        """Topic -> the leader of each partition (-1 while it has none), for the topics the
        cluster knows (internal ones left out), or just `topic` when named."""
        admin = _started(self._admin)
        cluster = await self._run(
            partial(admin.list_topics, topic=topic, timeout=self._timeout), "reading metadata"
        )
        return {
            name: [p.leader for p in meta.partitions.values()]
            for name, meta in cluster.topics.items()
            if meta.error is None and not name.startswith("__")
        }

    async def _topics(self) -> dict[str, int]:
        return {name: len(leaders) for name, leaders in (await self._metadata()).items()}

    async def partitions(self, topic: str) -> int:
        leaders = (await self._metadata(topic)).get(topic)
        if leaders is None:
            raise UnknownTopicError(f"unknown topic {topic!r}: provision it with ensure_topics")
        self._known.add(topic)
        return len(leaders)

    async def _require_topics(self, names: Iterable[str]) -> None:
        missing = set(names) - self._known
        if missing:
            self._known |= set(await self._topics())
            if missing - self._known:
                unknown = ", ".join(sorted(missing - self._known))
                raise UnknownTopicError(f"unknown topic {unknown}: provision it with ensure_topics")

    async def _offsets(
        self, topic: str, specs: Mapping[int, OffsetSpec], isolation: IsolationLevel
    ) -> dict[int, int]:
        """ListOffsets for many partitions in one request, retried while a new partition's
        leader is still loading it."""
        admin = _started(self._admin)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while True:
            futures = admin.list_offsets(
                {TopicPartition(topic, p): spec for p, spec in specs.items()},
                isolation_level=isolation,
                request_timeout=self._timeout,
            )
            try:
                return {
                    tp.partition: (await asyncio.wrap_future(future)).offset
                    for tp, future in futures.items()
                }
            except KafkaException as exc:
                err = _kafka_error(exc)
                if err is None or err.code() not in _NOT_READY or loop.time() > deadline:
                    raise _log_error(f"reading the offsets of {topic!r}", exc) from exc
            await asyncio.sleep(0.05)

    # --- topics ----------------------------------------------------------------------------

    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics (infinite retention, LogAppendTime) and wait until each has a
        leader, so it can be used at once. Existing topics are left as they are."""
        for spec in specs:
            if spec.partitions < 1:
                raise ValueError(f"topic {spec.name!r} needs at least one partition")
        if not specs:
            return
        admin = _started(self._admin)
        futures = admin.create_topics(
            [
                NewTopic(s.name, num_partitions=s.partitions, config=dict(_TOPIC_CONFIG))
                for s in specs
            ],
            operation_timeout=self._timeout,
            request_timeout=self._timeout,
        )
        created = []
        for name, future in futures.items():
            try:
                await asyncio.wrap_future(future)
                created.append(name)
            except KafkaException as exc:
                err = _kafka_error(exc)
                if err is None or err.code() != KafkaError.TOPIC_ALREADY_EXISTS:
                    raise _log_error(f"creating topic {name!r}", exc) from exc
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        while created:
            known = await self._metadata()
            created = [
                name for name in created if name not in known or min(known[name], default=-1) < 0
            ]
            if created and loop.time() > deadline:
                raise EventLogError(f"topics {created} created but never got leaders")
            if created:
                await asyncio.sleep(0.05)
        self._known |= {s.name for s in specs}

    async def topics(self) -> dict[str, int]:
        return await self._topics()

    async def end_offsets(self, topic: str) -> dict[int, int]:
        count = await self.partitions(topic)
        latest = {p: _LATEST for p in range(count)}
        return await self._offsets(topic, latest, IsolationLevel.READ_UNCOMMITTED)

    # --- appending -------------------------------------------------------------------------

    async def append(self, records: Sequence[Record]) -> list[Position]:
        if not records:
            return []
        producer = _started(self._producer)
        await self._require_topics(r.topic for r in records)
        delivery = _Delivery(asyncio.get_running_loop(), [r.topic for r in records])
        produced = 0
        try:
            for index, record in enumerate(records):
                while not _produce(producer, record, partial(delivery.report, index)):  # noqa: ASYNC110
                    # The local queue is full; the poller thread drains it as acks arrive.
                    await asyncio.sleep(0.005)
                produced += 1
                if produced % 1000 == 0:
                    await asyncio.sleep(0)  # a large batch must not starve other tasks
        except KafkaException as exc:
            raise _log_error("appending", exc) from exc
        finally:
            delivery.expect(produced)
        await delivery.future
        if delivery.error is not None:
            raise _log_error("appending", delivery.error)
        return _all_delivered(delivery.positions)

    async def append_atomic(
        self, records: Sequence[Record], *, within: float | None = None
    ) -> list[Position]:
        """One Kafka transaction: read_committed consumers see every record or none. A caller
        that stops waiting (`within`) leaves the transaction to abort on its worker thread,
        which holds the transaction lock until it has."""
        if not records:
            return []
        _started(self._producer)
        abandoned = threading.Event()
        try:
            async with asyncio.timeout(within):
                await self._require_topics(r.topic for r in records)
                await self._txn_lock.acquire()  # one transaction at a time per producer
                work = partial(self._transact, list(records), abandoned)
                running = asyncio.ensure_future(self._run(work, "atomic append"))
                running.add_done_callback(self._transaction_done)
                return await asyncio.shield(running)
        except TimeoutError:
            abandoned.set()
            raise EventLogError(f"atomic append: not committed within {within} s") from None

    def _transaction_done(self, running: asyncio.Future[list[Position]]) -> None:
        self._txn_lock.release()
        if not running.cancelled():
            running.exception()  # retrieved: an abandoned one's caller already heard the timeout

    def _transact(self, records: list[Record], abandoned: threading.Event) -> list[Position]:
        """Runs on a worker thread; delivery callbacks are served here by flush/poll. Aborts
        rather than commits once its caller has stopped waiting (`abandoned`)."""
        producer = self._txn_producer
        if producer is None:
            # A unique transactional.id per log instance: instances never fence each other.
            config = {**self._txn_config, "transactional.id": f"{self._client_id}-{uuid.uuid4()}"}
            producer = Producer(config, logger=_LIBRDKAFKA_LOG)
            producer.init_transactions(self._timeout)
            self._txn_producer = producer
        positions: list[Position | None] = [None] * len(records)
        failures: list[KafkaError] = []

        def report(index: int, err: KafkaError | None, message: Message) -> None:
            if err is not None:
                failures.append(err)
            else:
                positions[index] = _position(records[index].topic, message)

        try:
            producer.begin_transaction()
            for index, record in enumerate(records):
                while not _produce(producer, record, partial(report, index)):
                    producer.poll(0.05)  # the local queue is full: serve deliveries, retry
            give_up = time.monotonic() + self._timeout
            while producer.flush(_FLUSH_SLICE_S):
                if abandoned.is_set() or time.monotonic() > give_up:
                    raise EventLogError("atomic append: records not delivered in time; aborted")
            if failures:
                raise KafkaException(failures[0])
            if abandoned.is_set():
                raise EventLogError("atomic append: its caller stopped waiting; aborted")
            self._commit_transaction(producer)
        except BaseException:
            self._abort(producer)
            raise
        return _all_delivered(positions)

    def _commit_transaction(self, producer: Producer) -> None:
        for attempt in range(3):
            try:
                producer.commit_transaction(self._timeout)
                return
            except KafkaException as exc:
                # A retriable failure (e.g. a timeout) leaves the outcome open: commit again.
                err = _kafka_error(exc)
                if err is None or not err.retriable() or attempt == 2:
                    raise

    def _abort(self, producer: Producer) -> None:
        try:
            producer.abort_transaction(self._timeout)
        except KafkaException as exc:
            # Fatal (e.g. fenced) or stuck: the next transaction starts a fresh producer.
            logger.warning("kafka: abort failed (%s); replacing the transactional producer", exc)
            self._txn_producer = None

    # --- reading ---------------------------------------------------------------------------

    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        consumer = KafkaConsumer(
            self, group, list(topics), {**self._group_config, "group.id": group}
        )
        self._consumers.add(consumer)
        return consumer

    async def replay(
        self,
        topic: str,
        *,
        from_offset: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
    ) -> AsyncIterator[StoredRecord]:
        """Read without joining a group: assigned partitions, a throwaway group id, no commits.
        Each partition is read up to its last stable offset at the call (committed records
        only), or to the first record at/after `to_time`."""
        count = await self.partitions(topic)
        ranges = await self._replay_ranges(topic, count, from_offset, from_time, to_time)
        if not ranges:
            return
        reader = _Reader(
            {
                **self._config,
                "group.id": f"{self._client_id}-replay-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
                "fetch.wait.max.ms": 100,  # the end of a partition is noticed quickly
            }
        )
        try:
            start = [TopicPartition(topic, p, first) for p, (first, _) in ranges.items()]
            await reader.call("replay", partial(reader.consumer.assign, start))
            merge = _Merge(ranges, from_time, to_time)
            loop = asyncio.get_running_loop()
            last_progress = loop.time()
            while not merge.finished:
                pause, resume = merge.flow()
                step = partial(self._replay_step, reader, topic, pause, resume)
                if merge.add(await reader.call(f"replaying {topic!r}", step)):
                    last_progress = loop.time()
                elif loop.time() - last_progress > 2 * self._timeout:
                    raise EventLogError(f"replay of {topic!r} stalled (is the broker up?)")
                for record in merge.ready():
                    yield record
        finally:
            await reader.close()

    @staticmethod
    def _replay_step(
        reader: _Reader, topic: str, pause: list[int], resume: list[int]
    ) -> list[Message]:
        if pause:
            reader.consumer.pause([TopicPartition(topic, p) for p in pause])
        if resume:
            reader.consumer.resume([TopicPartition(topic, p) for p in resume])
        return reader.fetch(2000, 0.5)

    async def _replay_ranges(
        self,
        topic: str,
        count: int,
        from_offset: int | None,
        from_time: datetime | None,
        to_time: datetime | None,
    ) -> dict[int, tuple[int, int]]:
        """Partition -> [first, end) offsets to read; empty ranges left out."""
        committed = IsolationLevel.READ_COMMITTED
        ends = await self._offsets(topic, {p: _LATEST for p in range(count)}, committed)
        starts = {p: max(from_offset or 0, 0) for p in range(count)}
        if from_time is not None:
            at = OffsetSpec.for_timestamp(_millis(from_time))
            for p, offset in (
                await self._offsets(topic, dict.fromkeys(ends, at), committed)
            ).items():
                # -1: no record at/after from_time in this partition.
                starts[p] = max(starts[p], ends[p] if offset < 0 else offset)
        if to_time is not None:
            at = OffsetSpec.for_timestamp(_millis(to_time, round_up=True))
            for p, offset in (
                await self._offsets(topic, dict.fromkeys(ends, at), committed)
            ).items():
                if offset >= 0:
                    ends[p] = min(ends[p], offset)
        return {p: (starts[p], ends[p]) for p in range(count) if starts[p] < ends[p]}

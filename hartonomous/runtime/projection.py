"""The one consumer shape: a projection and the runner that keeps it up with the log.

A projection is what a consumer group makes of some topics: a table of handlers (one small
function per event type, looked up by the payload's class) and a store it applies them to,
one transaction at a time. The runner polls a batch and applies it in one transaction, in
which the projection's `claim` also records the positions the batch covers (the kernel's
Inbox, or the graph's positions) and tells which records were applied before; only after the
transaction committed are the group's offsets committed. So a crash anywhere re-delivers from
the last commit, and the claim skips what was already applied (or the writes are keyed
upserts that change nothing the second time).

A batch that fails is rolled back and applied again one record at a time, each in its own
transaction with retries and backoff, so one poison event is isolated: it goes to
`<topic>.dlq` with its error in the headers and the partition keeps flowing. Records that
cannot even be decoded go there first. A projection whose effects are durable one at a time
(keyed upserts into several stores, events appended) is not `atomic`: its records are always
applied one by one.

An outage is no poison: while the log or a store is down (Kafka, Postgres, or what the
projection declares `transient`, e.g. Neo4j), the runner holds the batch in hand and tries it
again with backoff until the store is back, dead-lettering nothing and never exiting for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, Generic, TypeVar

from hartonomous.eventlog.port import Consumer, EventLog, Position, Record, StoredRecord
from hartonomous.eventlog.topics import dlq_topic
from hartonomous.events import AvroCodec, Event, EventDecodeError, decode_event
from hartonomous.events.payloads import Payload
from hartonomous.runtime.metrics import BATCH_SIZE, CONSUMER_LAG, EVENTS_HANDLED
from hartonomous.runtime.outages import OUTAGES
from hartonomous.telemetry import continue_trace
from hartonomous.tunables import Value

logger = logging.getLogger(__name__)

Tx = TypeVar("Tx")
Handler = Callable[[Tx, Event[Any]], Awaitable[None]]
Claim = Callable[[Tx, Sequence[StoredRecord]], Awaitable[Collection[Position]]]


class PoisonEvent(Exception):
    """Raised by a handler for an event that can never succeed: it goes to the DLQ at once."""


SLICE_S = 0.002
"""A batch hands the event loop back at least this often: on `up`, requests share the loop, and
one wait behind a whole batch (tens of milliseconds) was the slowest searches' cause."""

OUTAGE_FIRST_RETRY_S = 0.5
OUTAGE_MAX_RETRY_S = 15.0


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    first_backoff: float = 0.1
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.first_backoff * 2**attempt))


@dataclass(frozen=True)
class Projection(Generic[Tx]):
    """A consumer group's projection of `topics`.

    `transaction()` opens one unit of work on the store and yields what handlers write
    through; leaving it without an error commits. `claim(tx, records)` records, in that
    transaction, that these records are applied, and returns the positions of those that
    were not applied before (None: every record is new, the writes being keyed upserts).
    Events whose payload class has no handler are skipped (and still claimed)."""

    group: str
    topics: Sequence[str]
    handlers: Mapping[type[Payload], Handler[Tx]]
    transaction: Callable[[], AbstractAsyncContextManager[Tx]]
    claim: Claim[Tx] | None = None
    atomic: bool = True
    poison: tuple[type[Exception], ...] = ()
    """Handler errors that mean the event can never be applied: dead-lettered without retries."""
    transient: tuple[type[Exception], ...] = ()
    """Handler errors that mean the projection's own store is down (beyond OUTAGES): the batch
    waits for it, never dead-lettered."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    max_batch: int = 200

    @classmethod
    def one_at_a_time(
        cls,
        group: str,
        topics: Sequence[str],
        handlers: Mapping[type[Payload], Handler[Tx]],
        deps: Tx,
        *,
        poison: tuple[type[Exception], ...] = (),
        transient: tuple[type[Exception], ...] = (),
        max_batch: int = 200,
    ) -> Projection[Tx]:
        """A projection with no transaction of its own: its handlers write through `deps` with
        keyed upserts or idempotent appends, durable one record at a time (so records are
        applied one by one, and re-applying one is harmless)."""
        return cls(
            group,
            topics,
            handlers,
            lambda: nullcontext(deps),
            atomic=False,
            poison=poison,
            transient=transient,
            max_batch=max_batch,
        )


Decoded = tuple[StoredRecord, Event[Payload]]


class _Slices:
    """Yields to the event loop whenever SLICE_S has passed since it last did."""

    def __init__(self) -> None:
        self._since = time.perf_counter()

    async def tick(self) -> None:
        if time.perf_counter() - self._since >= SLICE_S:
            await asyncio.sleep(0)
            self._since = time.perf_counter()


class ProjectionRunner(Generic[Tx]):
    """Runs a projection as a member of its consumer group until `stop()`."""

    def __init__(
        self,
        event_log: EventLog,
        codec: AvroCodec,
        projection: Projection[Tx],
        *,
        lag_interval: float = 5.0,
        dead_letters: bool = True,
    ) -> None:
        """`dead_letters`: False for a replay, whose rejects the live runner dead-lettered
        already: they are only counted (`rejected`)."""
        self._event_log = event_log
        self._codec = codec
        self.projection = projection
        self._lag_interval = lag_interval
        self._dead_letters = dead_letters
        self.rejected = 0
        self.max_batch = projection.max_batch
        self.linger_s = 0.0
        """After a poll that came back short of max_batch, wait this long for more records
        before applying: fewer, larger transactions for a little freshness."""
        self.lag: int | None = None
        """Records appended and not yet applied, over the partitions this member owns (None
        until it has applied some: an unknown lag is never reported as zero)."""
        self.batches = 0
        self.delay_s = 0.0
        """Over every batch applied: seconds from its newest record reaching the log to the
        batch committed (for search, how soon a new document becomes searchable)."""
        self._poison: tuple[type[Exception], ...] = (PoisonEvent, *projection.poison)
        self._outages: tuple[type[Exception], ...] = (*OUTAGES, *projection.transient)
        self._positions: dict[tuple[str, int], int] = {}
        self._stopping = asyncio.Event()

    @property
    def group(self) -> str:
        return self.projection.group

    def stop(self) -> None:
        """Finish the batch in hand, commit it, leave the group."""
        self._stopping.set()

    def retune_batch(self, records: Value) -> None:
        """Poll (and apply in one transaction) this many records at a time from now on."""
        self.max_batch = int(records)

    def retune_linger(self, ms: Value) -> None:
        """Wait this many milliseconds for a short batch to fill from now on (0: apply at once)."""
        self.linger_s = float(ms) / 1000

    async def run(self) -> None:
        consumer = self._event_log.consumer(self.group, self.projection.topics)
        last_lag = 0.0
        records: Sequence[StoredRecord] = []

        async def poll() -> None:
            nonlocal records
            records = await consumer.poll(self.max_batch, timeout=0.5)

        async def fill() -> None:
            """What arrived while lingering, after the records in hand (a step of its own, so
            an outage retries only it and the records in hand are kept)."""
            nonlocal records
            records = [*records, *await consumer.poll(self.max_batch - len(records), timeout=0)]

        try:
            while not self._stopping.is_set():
                if not await self._through_outages("polling", poll):
                    break
                if records and len(records) < self.max_batch and self.linger_s > 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._stopping.wait(), self.linger_s)
                    if not await self._through_outages("polling", fill):
                        break
                if records:
                    BATCH_SIZE.labels(self.group).observe(len(records))
                    if not await self._through_outages("applying", partial(self.apply, records)):
                        break
                    commit = partial(consumer.commit, records)
                    if not await self._through_outages("committing", commit):
                        break
                    newest = max(record.timestamp for record in records)
                    self.delay_s += max(0.0, (datetime.now(UTC) - newest).total_seconds())
                    self.batches += 1
                if time.monotonic() - last_lag >= self._lag_interval:
                    await self._through_outages("measuring lag", lambda: self._report_lag(consumer))
                    last_lag = time.monotonic()
        finally:
            await consumer.close()

    async def _through_outages(self, doing: str, step: Callable[[], Awaitable[None]]) -> bool:
        """Run `step` until it gets through: an outage of the log or a store is waited out with
        backoff. False when the runner was stopped meanwhile (the batch in hand is then neither
        applied nor committed: it is delivered again)."""
        delay = OUTAGE_FIRST_RETRY_S
        while True:
            try:
                await step()
                return True
            except self._outages as exc:
                EVENTS_HANDLED.labels(self.group, "*", "outage").inc()
                logger.warning(
                    "%s: %s failed, a store is down; retrying in %.1f s: %r",
                    self.group,
                    doing,
                    delay,
                    exc,
                )
            try:
                await asyncio.wait_for(self._stopping.wait(), delay)
                return False
            except TimeoutError:
                delay = min(2 * delay, OUTAGE_MAX_RETRY_S)

    async def apply(self, records: Sequence[StoredRecord]) -> None:
        """Apply a batch (or dead-letter its records); what `run` does with each poll."""
        decoded: list[Decoded] = []
        undecodable: list[StoredRecord] = []
        slices = _Slices()
        for record in records:
            await slices.tick()
            try:
                decoded.append((record, decode_event(self._codec, record)))
            except EventDecodeError as exc:
                await self._dead_letter(record, exc)
                undecodable.append(record)
        if self.projection.atomic and await self._apply_batch(records, decoded):
            for record, _ in decoded:
                EVENTS_HANDLED.labels(self.group, record.topic, "ok").inc()
        else:
            for record, event in decoded:
                await self._apply_one(record, event)
            for record in undecodable:
                await self._claim_dead_letter(record)
        self._advance(records)

    async def _apply_batch(self, records: Sequence[StoredRecord], decoded: list[Decoded]) -> bool:
        try:
            async with self.projection.transaction() as tx:
                fresh = await self._claim(tx, records)
                slices = _Slices()
                for record, event in decoded:
                    await slices.tick()
                    if record.position in fresh:
                        await self._dispatch(tx, event)
        except self._outages:
            raise  # not the batch's fault: applied again once the store is back
        except Exception:
            logger.warning(
                "batch failed; applying its records one by one",
                extra={"group": self.group, "records": len(records)},
                exc_info=True,
            )
            return False
        return True

    async def _apply_one(self, record: StoredRecord, event: Event[Payload]) -> None:
        retry = self.projection.retry
        for attempt in range(retry.attempts):
            try:
                async with self.projection.transaction() as tx:
                    if await self._claim(tx, [record]):
                        await self._dispatch(tx, event)
                EVENTS_HANDLED.labels(self.group, record.topic, "ok").inc()
                return
            except self._poison as exc:
                await self._dead_letter(record, exc)
                break
            except self._outages:
                raise
            except Exception as exc:
                if attempt + 1 == retry.attempts:
                    await self._dead_letter(record, exc)
                    break
                EVENTS_HANDLED.labels(self.group, record.topic, "retried").inc()
                logger.warning(
                    "handler failed, retrying",
                    extra={"group": self.group, "offset": record.offset, "error": repr(exc)},
                )
                await asyncio.sleep(retry.delay(attempt))
        await self._claim_dead_letter(record)

    async def _claim(self, tx: Tx, records: Sequence[StoredRecord]) -> Collection[Position]:
        if self.projection.claim is None:
            return {record.position for record in records}
        return await self.projection.claim(tx, records)

    async def _claim_dead_letter(self, record: StoredRecord) -> None:
        """A dead-lettered record is handled too: the projection's positions move past it."""
        if self.projection.claim is None:
            return
        try:
            async with self.projection.transaction() as tx:
                await self.projection.claim(tx, [record])
        except Exception:
            logger.warning("could not record a dead letter's position", exc_info=True)

    async def _dispatch(self, tx: Tx, event: Event[Payload]) -> None:
        handler = self.projection.handlers.get(type(event.payload))
        if handler is None:
            return
        # The handler runs in a span of the trace that produced the event, so a request's
        # trace continues through every consumer it causes work in.
        with continue_trace(f"{self.group}: {event.event_type}", event.envelope.traceparent):
            await handler(tx, event)

    def _advance(self, records: Sequence[StoredRecord]) -> None:
        for record in records:
            self._positions[(record.topic, record.partition)] = record.offset + 1

    async def _dead_letter(self, record: StoredRecord, exc: BaseException) -> None:
        self.rejected += 1
        if not self._dead_letters:
            return
        headers = dict(record.headers)
        headers.update(
            {
                "dlq_error": f"{type(exc).__name__}: {exc}"[:2000],
                "dlq_trace": "".join(traceback.format_exception(exc))[-4000:],
                "dlq_group": self.group,
                "dlq_source_topic": record.topic,
                "dlq_source_partition": str(record.partition),
                "dlq_source_offset": str(record.offset),
            }
        )
        dead = Record(dlq_topic(record.topic), record.key, record.value, headers)
        await self._event_log.append([dead])
        EVENTS_HANDLED.labels(self.group, record.topic, "dead_lettered").inc()
        logger.error(
            "event dead-lettered",
            extra={"group": self.group, "topic": record.topic, "offset": record.offset},
        )

    async def _report_lag(self, consumer: Consumer) -> None:
        assigned = await consumer.assignment()
        total: int | None = None
        for topic in {t for t, _ in assigned}:
            ends = await self._event_log.end_offsets(topic)
            for partition, end in ends.items():
                done = self._positions.get((topic, partition))
                if (topic, partition) in assigned and done is not None:
                    lag = max(0, end - done)
                    CONSUMER_LAG.labels(self.group, topic, str(partition)).set(lag)
                    total = (total or 0) + lag
        self.lag = total


@dataclass
class Replayed:
    records: int = 0
    rejected: int = 0  # undecodable or unprojectable: the live runner dead-lettered them


async def replay(
    event_log: EventLog,
    codec: AvroCodec,
    projection: Projection[Tx],
    *,
    progress_every: float = 5.0,
    since: Mapping[str, datetime] | None = None,
) -> Replayed:
    """Project every record of the projection's topics, from the start up to their current
    ends, exactly as the live runner does (same batches, handlers, claims and fallback): the
    recovery path of a store that lost its data or changed its layout. `since` starts some
    topics at a time instead (a projection that needs only their recent past)."""
    runner = ProjectionRunner(event_log, codec, projection, dead_letters=False)
    done = Replayed()
    started = reported = time.monotonic()
    for topic in projection.topics:
        batch: list[StoredRecord] = []
        start = (since or {}).get(topic)
        records = (
            event_log.replay(topic, from_offset=0)
            if start is None
            else event_log.replay(topic, from_time=start)
        )
        async for record in records:
            batch.append(record)
            if len(batch) >= projection.max_batch:
                await runner.apply(batch)
                done.records += len(batch)
                batch = []
            if time.monotonic() - reported >= progress_every:
                reported = time.monotonic()
                logger.info(
                    "replaying %s: %d records (%s)",
                    projection.group,
                    done.records,
                    topic,
                    extra={"group": projection.group, "records": done.records, "topic": topic},
                )
        if batch:
            await runner.apply(batch)
            done.records += len(batch)
    done.rejected = runner.rejected
    logger.info(
        "%s replayed from the log: %d records in %.1f s (%d rejected)",
        projection.group,
        done.records,
        time.monotonic() - started,
        done.rejected,
    )
    return done

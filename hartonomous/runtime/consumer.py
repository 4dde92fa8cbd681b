"""The async consumer loop every service runs: at-least-once delivery, retries with backoff,
poison events to `<topic>.dlq` (the partition keeps flowing), graceful drain, lag metrics."""

from __future__ import annotations

import asyncio
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from hartonomous.eventlog.port import Consumer, EventLog, Record, StoredRecord
from hartonomous.eventlog.topics import dlq_topic
from hartonomous.events import AvroCodec, Event, EventDecodeError, decode_event
from hartonomous.runtime.metrics import BATCH_SIZE, CONSUMER_LAG, EVENTS_HANDLED
from hartonomous.telemetry import continue_trace

log = logging.getLogger(__name__)

Handler = Callable[[Event, StoredRecord], Awaitable[None]]
Deps = TypeVar("Deps")


class PoisonEvent(Exception):
    """Raised by a handler for an event that can never succeed: it goes to the DLQ at once."""


def dispatch(
    handlers: Mapping[str, Callable[[Deps, Event], Awaitable[None]]],
    deps: Deps,
    poison: type[Exception],
) -> Handler:
    """A ConsumerLoop handler that routes each event to `handlers[event_type]` (other types are
    ignored) and turns `poison` (content that can never be handled) into a PoisonEvent."""

    async def handle(event: Event, record: StoredRecord) -> None:
        handler = handlers.get(event.event_type)
        if handler is None:
            return
        try:
            await handler(deps, event)
        except poison as exc:
            raise PoisonEvent(str(exc)) from exc

    return handle


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 4
    first_backoff: float = 0.1
    max_backoff: float = 5.0

    def delay(self, attempt: int) -> float:
        return float(min(self.max_backoff, self.first_backoff * 2**attempt))


class ConsumerLoop:
    """Polls `topics` as member of `group` and hands each decoded event to `handler`.

    Offsets are committed only after a batch is handled (or dead-lettered), so a crash
    re-delivers; handlers make that harmless with an Inbox or keyed upserts."""

    def __init__(
        self,
        log_: EventLog,
        codec: AvroCodec,
        group: str,
        topics: Sequence[str],
        handler: Handler,
        *,
        max_batch: int = 200,
        retry: RetryPolicy | None = None,
        lag_interval: float = 5.0,
    ) -> None:
        self._log = log_
        self._codec = codec
        self.group = group
        self.topics = list(topics)
        self._handler = handler
        self._max_batch = max_batch
        self._retry = retry or RetryPolicy()
        self._lag_interval = lag_interval
        self._positions: dict[tuple[str, int], int] = {}
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """Finish the batch in hand, commit it, leave the group."""
        self._stopping.set()

    async def run(self) -> None:
        consumer = self._log.consumer(self.group, self.topics)
        last_lag = 0.0
        try:
            while not self._stopping.is_set():
                records = await consumer.poll(self._max_batch, timeout=0.5)
                if records:
                    BATCH_SIZE.labels(self.group).observe(len(records))
                    await self.handle_batch(records)
                    await consumer.commit(records)
                if time.monotonic() - last_lag >= self._lag_interval:
                    await self._report_lag(consumer)
                    last_lag = time.monotonic()
        finally:
            await consumer.close()

    async def handle_batch(self, records: Sequence[StoredRecord]) -> None:
        for record in records:
            await self._handle(record)
            self._positions[(record.topic, record.partition)] = record.offset + 1

    async def _handle(self, record: StoredRecord) -> None:
        try:
            event = decode_event(self._codec, record)
        except EventDecodeError as exc:
            await self._dead_letter(record, exc)
            return
        for attempt in range(self._retry.attempts):
            try:
                # The handler runs in a span of the trace that produced the event, so a request's
                # trace continues through every consumer it causes work in.
                span_name = f"{self.group}: {event.event_type}"
                with continue_trace(span_name, event.envelope.traceparent):
                    await self._handler(event, record)
                EVENTS_HANDLED.labels(self.group, record.topic, "ok").inc()
                return
            except PoisonEvent as exc:
                await self._dead_letter(record, exc)
                return
            except Exception as exc:
                if attempt + 1 == self._retry.attempts:
                    await self._dead_letter(record, exc)
                    return
                EVENTS_HANDLED.labels(self.group, record.topic, "retried").inc()
                log.warning(
                    "handler failed, retrying",
                    extra={"group": self.group, "offset": record.offset, "error": repr(exc)},
                )
                await asyncio.sleep(self._retry.delay(attempt))

    async def _dead_letter(self, record: StoredRecord, exc: BaseException) -> None:
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
        await self._log.append([Record(dlq_topic(record.topic), record.key, record.value, headers)])
        EVENTS_HANDLED.labels(self.group, record.topic, "dead_lettered").inc()
        log.error(
            "event dead-lettered",
            extra={"group": self.group, "topic": record.topic, "offset": record.offset},
        )

    async def _report_lag(self, consumer: Consumer) -> None:
        assigned = await consumer.assignment()
        for topic in {t for t, _ in assigned}:
            ends = await self._log.end_offsets(topic)
            for partition, end in ends.items():
                done = self._positions.get((topic, partition))
                if (topic, partition) in assigned and done is not None:
                    CONSUMER_LAG.labels(self.group, topic, str(partition)).set(max(0, end - done))

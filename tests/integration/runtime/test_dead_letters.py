"""A bad event lands in `<topic>.dlq` with its error, and the partition keeps flowing; handlers
run inside the trace that produced their event."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from decimal import Decimal

from opentelemetry import trace

from hartonomous.eventlog.port import EventLog, Record, TopicSpec
from hartonomous.eventlog.topics import dlq_topic
from hartonomous.events import AvroCodec, Event
from hartonomous.events.payloads import UsageRecorded
from hartonomous.runtime.projection import (
    Handler,
    PoisonEvent,
    Projection,
    ProjectionRunner,
    RetryPolicy,
)
from tests.support.events import usage_record


def one_at_a_time(
    eventlog: EventLog, group: str, topic: str, handler: Handler[None], attempts: int = 4
) -> ProjectionRunner[None]:
    """A runner of a projection that applies each record on its own (no transaction)."""
    projection = replace(
        Projection.one_at_a_time(group, [topic], {UsageRecorded: handler}, None),
        retry=RetryPolicy(attempts=attempts, first_backoff=0.01),
    )
    return ProjectionRunner(eventlog, AvroCodec(), projection)


async def test_poison_events_go_to_the_dlq_and_later_events_are_still_handled(
    eventlog: EventLog,
) -> None:
    codec = AvroCodec()
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    good = usage_record(codec, topic, "acme", Decimal("1.5"))
    garbage = Record(topic, b"acme", b"\xc3\x01not avro at all", dict(good.headers))
    refused = usage_record(codec, topic, "acme", Decimal("-1"))
    await eventlog.append([good, garbage, refused, usage_record(codec, topic, "acme", Decimal(2))])

    handled: list[Decimal] = []
    attempts: dict[int, int] = {}

    async def handler(_: None, event: Event[UsageRecorded]) -> None:
        offset = event.logged.offset
        attempts[offset] = attempts.get(offset, 0) + 1
        if event.payload.quantity < 0:
            raise PoisonEvent("negative usage is never valid")
        handled.append(event.payload.quantity)

    loop = one_at_a_time(eventlog, "g-dlq", topic, handler, attempts=3)
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(300):
            if len(handled) == 2:
                break
            await asyncio.sleep(0.1)
    finally:
        loop.stop()
        await task
    assert handled == [Decimal("1.5"), Decimal(2)]
    assert attempts[2] == 1  # a PoisonEvent is not retried

    dead = [r async for r in eventlog.replay(dlq_topic(topic), from_offset=0)]
    assert [r.value for r in dead] == [garbage.value, refused.value]
    assert "EventDecodeError" in dead[0].headers["dlq_error"]
    assert dead[0].headers["dlq_source_offset"] == "1"
    assert "negative usage" in dead[1].headers["dlq_error"]
    assert dead[1].headers["dlq_group"] == "g-dlq"


async def test_transient_failures_are_retried_then_dead_lettered(eventlog: EventLog) -> None:
    codec = AvroCodec()
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    await eventlog.append([usage_record(codec, topic, "acme", Decimal(i)) for i in range(3)])
    calls: dict[int, int] = {}

    async def flaky(_: None, event: Event[UsageRecorded]) -> None:
        offset = event.logged.offset
        calls[offset] = calls.get(offset, 0) + 1
        if offset == 0 and calls[0] < 2:
            raise ConnectionError("database blip")  # succeeds on the retry
        if offset == 1:
            raise RuntimeError("always fails")

    loop = one_at_a_time(eventlog, "g-retry", topic, flaky, attempts=3)
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(300):
            if calls.get(2):
                break
            await asyncio.sleep(0.1)
    finally:
        loop.stop()
        await task
    assert calls == {0: 2, 1: 3, 2: 1}
    dead = [r async for r in eventlog.replay(dlq_topic(topic), from_offset=0)]
    assert len(dead) == 1 and "always fails" in dead[0].headers["dlq_error"]


async def test_handlers_run_inside_the_trace_that_produced_the_event(eventlog: EventLog) -> None:
    codec = AvroCodec()
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
    record = usage_record(codec, topic, "acme", Decimal(1))
    headers = {**record.headers, "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
    await eventlog.append([Record(topic, record.key, record.value, headers)])
    seen: list[str] = []

    async def handler(_: None, event: Event[UsageRecorded]) -> None:
        seen.append(format(trace.get_current_span().get_span_context().trace_id, "032x"))

    loop = one_at_a_time(eventlog, "g-trace", topic, handler)
    task = asyncio.create_task(loop.run())
    try:
        for _ in range(300):
            if seen:
                break
            await asyncio.sleep(0.1)
    finally:
        loop.stop()
        await task
    assert seen == [trace_id]

"""A lingering runner lets a short batch fill: what arrives within `<group>.consumer.linger_ms`
of the first record is applied with it, in one batch, and a stop during the wait still applies
and commits what was polled."""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

from hartonomous.eventlog.port import EventLog, TopicSpec
from hartonomous.events import AvroCodec, Event
from hartonomous.events.payloads import UsageRecorded
from hartonomous.runtime.projection import ProjectionRunner
from tests.support.events import usage_record
from tests.support.runners import one_at_a_time, run_until

CODEC = AvroCodec()


async def lingering(
    eventlog: EventLog, linger_ms: int
) -> tuple[ProjectionRunner[None], str, list[Decimal]]:
    """A runner on a topic of its own lingering `linger_ms`, and the quantities it handled."""
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 1)])
    handled: list[Decimal] = []

    async def handle(_: None, event: Event[UsageRecorded]) -> None:
        handled.append(event.payload.quantity)

    runner = one_at_a_time(eventlog, f"linger-{topic}", topic, handle)
    runner.retune_linger(linger_ms)
    return runner, topic, handled


async def test_records_arriving_within_the_linger_are_applied_in_one_batch(
    eventlog: EventLog,
) -> None:
    runner, topic, handled = await lingering(eventlog, 1500)

    async def append_two() -> None:
        await eventlog.append([usage_record(CODEC, topic, "acme", Decimal(1))])
        await asyncio.sleep(0.3)
        assert handled == []  # the first record waits for company
        await eventlog.append([usage_record(CODEC, topic, "acme", Decimal(2))])

    appending = asyncio.create_task(append_two())
    await run_until(runner, lambda: len(handled) == 2)
    await appending
    assert handled == [1, 2]
    assert runner.batches == 1


async def test_a_stop_while_lingering_applies_what_was_polled(eventlog: EventLog) -> None:
    runner, topic, handled = await lingering(eventlog, 5000)
    await eventlog.append([usage_record(CODEC, topic, "acme", Decimal(3))])
    running = asyncio.create_task(runner.run())
    await asyncio.sleep(1.0)  # polled by now, lingering
    stopped = time.monotonic()
    runner.stop()
    await running
    assert handled == [3]
    assert time.monotonic() - stopped < 2.5  # not the rest of the 5 s linger
    assert runner.batches == 1  # applied and committed

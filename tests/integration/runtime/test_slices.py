"""A batch shares the event loop: while a runner decodes and dispatches a long batch it hands
the loop back every few milliseconds (on `up`, requests wait on the same loop)."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import nullcontext
from decimal import Decimal

from hartonomous.eventlog.port import EventLog, TopicSpec
from hartonomous.events import AvroCodec, Event
from hartonomous.events.payloads import UsageRecorded
from hartonomous.runtime.projection import SLICE_S, Projection, ProjectionRunner
from tests.support.events import usage_record

CODEC = AvroCodec()
RECORDS = 20
WORK_S = 0.001  # each record's handler holds the loop this long, never awaiting anything


async def test_a_long_batch_lets_other_tasks_run_while_it_is_applied(eventlog: EventLog) -> None:
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 1)])
    await eventlog.append([usage_record(CODEC, topic, "acme", Decimal(n)) for n in range(RECORDS)])
    records = [record async for record in eventlog.replay(topic)]
    handled: list[Decimal] = []

    async def busy(_: None, event: Event[UsageRecorded]) -> None:
        until = time.perf_counter() + WORK_S
        while time.perf_counter() < until:
            pass
        handled.append(event.payload.quantity)

    projection = Projection(
        f"slices-{topic}", [topic], {UsageRecorded: busy}, lambda: nullcontext(None)
    )
    runner = ProjectionRunner(eventlog, CODEC, projection)
    turns = 0

    async def count_turns() -> None:
        nonlocal turns
        while True:
            await asyncio.sleep(0)
            turns += 1

    counting = asyncio.create_task(count_turns())
    await asyncio.sleep(0)  # the counter is waiting for its next turn
    before = turns
    await runner.apply(records)
    during = turns - before
    counting.cancel()

    assert handled == [Decimal(n) for n in range(RECORDS)]
    # ~20 ms of handling in slices of SLICE_S: the other task ran between them (none without).
    assert during >= RECORDS * WORK_S / SLICE_S / 2

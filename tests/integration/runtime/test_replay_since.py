"""A rebuild may replay only the recent past of a topic (`replay(..., since=...)`): the
records appended before that time are skipped, the other topics are replayed whole."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

from hartonomous.eventlog.port import EventLog, TopicSpec
from hartonomous.events import AvroCodec, Event
from hartonomous.events.payloads import UsageRecorded
from hartonomous.runtime.projection import Projection, replay
from tests.support.events import usage_record


async def test_a_topic_replayed_since_a_time_skips_what_came_before(eventlog: EventLog) -> None:
    codec = AvroCodec()
    recent, whole = (f"usage-{uuid.uuid4().hex[:8]}" for _ in range(2))
    await eventlog.ensure_topics([TopicSpec(recent, 2), TopicSpec(whole, 1)])
    old = [usage_record(codec, t, "acme", Decimal(1)) for t in (recent, recent, whole)]
    await eventlog.append(old)
    await asyncio.sleep(1.1)  # record timestamps have millisecond (Kafka) or better precision
    since = datetime.now(UTC)
    await asyncio.sleep(0.1)
    new = [usage_record(codec, t, "acme", Decimal(2)) for t in (recent, recent, recent, whole)]
    await eventlog.append(new)

    handled: list[tuple[str, Decimal]] = []

    async def handle(_: None, event: Event[UsageRecorded]) -> None:
        handled.append((event.logged.topic, event.payload.quantity))

    projection = Projection.one_at_a_time("g-since", [recent, whole], {UsageRecorded: handle}, None)
    done = await replay(eventlog, codec, projection, since={recent: since})
    assert sorted(handled) == sorted(
        [(recent, Decimal(2))] * 3 + [(whole, Decimal(1)), (whole, Decimal(2))]
    )
    assert done.records == 5

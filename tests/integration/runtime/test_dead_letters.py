"""A bad event lands in `<topic>.dlq` with its error, and the partition keeps flowing, in the
kernel's runner and through the billing ledger's and the provenance graph's projections;
handlers run inside the trace that produced their event."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

from opentelemetry import trace

from hartonomous.eventlog.port import EventLog, Record, TopicSpec
from hartonomous.eventlog.topics import dlq_topic
from hartonomous.events import AvroCodec, Event, encode_event
from hartonomous.events.payloads import UsageRecorded
from hartonomous.postgres import create_pool
from hartonomous.runtime.projection import (
    PoisonEvent,
    ProjectionRunner,
    RetryPolicy,
)
from services.billing.handlers import ledger_projection
from services.billing.quota import QuotaBook, utc_now
from services.billing.store import BillingStore
from services.provenance.graph.embedded import EmbeddedGraphStore
from services.provenance.projector import graph_projection
from tests.support.events import new_event, usage, usage_record
from tests.support.runners import one_at_a_time, run_until


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

    await run_until(
        one_at_a_time(eventlog, "g-dlq", topic, handler, attempts=3), lambda: len(handled) == 2
    )
    assert handled == [Decimal("1.5"), Decimal(2)]
    assert attempts[2] == 1  # a PoisonEvent is not retried

    dead = [r async for r in eventlog.replay(dlq_topic(topic), from_offset=0)]
    assert [r.value for r in dead] == [garbage.value, refused.value]
    assert "EventDecodeError" in dead[0].headers["dlq_error"]
    assert dead[0].headers["dlq_source_offset"] == "1"
    assert "negative usage" in dead[1].headers["dlq_error"]
    assert dead[1].headers["dlq_group"] == "g-dlq"


async def test_a_store_outage_is_waited_out_and_nothing_is_dead_lettered(
    eventlog: EventLog,
) -> None:
    """Postgres refusing connections for longer than any retry policy: the runner holds its
    batch, keeps running, and applies every record once the store is back."""
    codec = AvroCodec()
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    await eventlog.append([usage_record(codec, topic, "acme", Decimal(i)) for i in range(3)])
    down_until = asyncio.get_running_loop().time() + 3.0
    handled: list[Decimal] = []
    refused = 0

    async def handler(_: None, event: Event[UsageRecorded]) -> None:
        nonlocal refused
        if asyncio.get_running_loop().time() < down_until:
            refused += 1
            raise ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)")
        handled.append(event.payload.quantity)

    await run_until(
        one_at_a_time(eventlog, "g-outage", topic, handler, attempts=2), lambda: len(handled) == 3
    )
    assert handled == [Decimal(0), Decimal(1), Decimal(2)]
    assert refused > 2  # more failures than the retry policy allows a record
    assert [r async for r in eventlog.replay(dlq_topic(topic), from_offset=0)] == []


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

    await run_until(
        one_at_a_time(eventlog, "g-retry", topic, flaky, attempts=3), lambda: calls.get(2)
    )
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

    await run_until(one_at_a_time(eventlog, "g-trace", topic, handler), lambda: bool(seen))
    assert seen == [trace_id]


async def test_the_billing_ledger_isolates_a_poison_event_from_its_batch(
    eventlog: EventLog, pg_url: str
) -> None:
    """A batch that cannot commit (a tenant id Postgres refuses) is applied again record by
    record: the good ones reach the ledger, the bad one the DLQ, and the inbox passes both."""
    codec = AvroCodec()
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    good = usage_record(codec, topic, "acme", Decimal(2))
    garbage = Record(topic, b"acme", b"\xc3\x01not avro at all", dict(good.headers))
    # A payload Postgres refuses (no NUL in its text), in an ordinary envelope.
    nul = replace(usage("acme", Decimal(3)), tenant_id="ac\x00me")
    refused = encode_event(codec, new_event(nul, "acme"), topic, "acme")
    await eventlog.append([good, garbage, refused, usage_record(codec, topic, "acme", Decimal(5))])
    pool = await create_pool(pg_url, max_size=2)
    try:
        store = BillingStore(pool)
        await store.setup()
        projection = replace(
            ledger_projection(store, QuotaBook(utc_now)),
            group="g-ledger-dlq",
            topics=[topic],
            retry=RetryPolicy(attempts=2, first_backoff=0.01),
        )
        dead = dlq_topic(topic)

        async def settled() -> bool:
            return sum((await eventlog.end_offsets(dead)).values()) == 2

        await run_until(ProjectionRunner(eventlog, codec, projection), settled)
        rows = await pool.fetch("select tenant_id, quantity from billing.ledger order by quantity")
        assert [(r["tenant_id"], r["quantity"]) for r in rows] == [("acme", 2), ("acme", 5)]
        errors = [r.headers["dlq_error"] async for r in eventlog.replay(dead, from_offset=0)]
        assert "EventDecodeError" in errors[0] and "0x00" in errors[1]
        assert await pool.fetchval('select "offset" from billing.inbox') == 3
    finally:
        await pool.close()


async def test_the_provenance_graph_passes_a_dead_letter_and_keeps_the_rest(
    eventlog: EventLog, tmp_path: Path
) -> None:
    codec = AvroCodec()
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    good = usage_record(codec, topic, "acme", Decimal(2))
    garbage = Record(topic, b"acme", b"\xc3\x01not avro at all", dict(good.headers))
    await eventlog.append([good, garbage, usage_record(codec, topic, "acme", Decimal(5))])
    store = EmbeddedGraphStore(tmp_path / "graph.lbug")
    await store.open()
    try:
        projection = replace(graph_projection(store), group="g-graph-dlq", topics=[topic])

        async def settled() -> bool:
            return await store.positions() == {(topic, 0): 3}

        await run_until(ProjectionRunner(eventlog, codec, projection), settled)
        labels, _ = await store.counts()
        assert labels["UsageRecord"] == 2
        dead = [r async for r in eventlog.replay(dlq_topic(topic), from_offset=0)]
        assert [r.value for r in dead] == [garbage.value]
        assert dead[0].headers["dlq_group"] == "g-graph-dlq"
    finally:
        await store.close()

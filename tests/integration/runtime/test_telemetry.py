"""Every process publishes telemetry windows: its gRPC calls timed by the server (a caller's
mistake is no server error), the effective value of every tunable it holds, every
`telemetry.interval_s` (retuned live), and how long its projections' records waited in the log."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from decimal import Decimal

import grpc
import pytest

from hartonomous.eventlog.port import EventLog, TopicSpec
from hartonomous.eventlog.topics import dlq_topic
from hartonomous.events import AvroCodec, Event
from hartonomous.events.payloads import TelemetryRecorded, UsageRecorded
from hartonomous.runtime.projection import Projection, ProjectionRunner
from hartonomous.runtime.service import WindowMeanDelay
from hartonomous.runtime.windows import TelemetryEmitter
from hartonomous.v1 import control_pb2 as pb
from hartonomous.v1 import control_pb2_grpc
from services.control.service import ControlService
from tests.support.events import usage_record
from tests.support.harness import running


async def test_calls_are_timed_and_windows_carry_the_held_tunables(pg_url: str) -> None:
    async with running(ControlService(), pg_url=pg_url) as h:
        stub = control_pb2_grpc.ControlStub(h.channel)
        for _ in range(3):
            await stub.GetConfig(pb.GetConfigRequest())
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.GetConfig(pb.GetConfigRequest(key="no.such.knob"))
        await asyncio.sleep(0.2)  # the server counts a call once it is done on its side
        emitter = TelemetryEmitter(h.ctx.telemetry, h.ctx.publisher("telemetry"), h.ctx.config)
        await emitter.publish()
        [event] = await h.events("telemetry")
        window = event.payload
        assert isinstance(window, TelemetryRecorded)
        assert (window.service, window.instance) == ("control", h.ctx.instance)
        [get] = [o for o in window.operations if o.operation == "hartonomous.v1.Control/GetConfig"]
        assert (get.requests, get.errors) == (4, 0)  # NOT_FOUND is the caller's mistake
        assert get.p95_ms is not None and get.p95_ms > 0
        assert window.tunables["telemetry.interval_s"] == "5"
        lags = {s.labels["group"] for s in window.gauges if s.name == "consumer_lag"}
        assert lags <= {"control", h.control.group}


async def test_the_interval_is_retuned_live(pg_url: str) -> None:
    async with running(ControlService(), pg_url=pg_url, consume=False) as h:
        emitter = TelemetryEmitter(h.ctx.telemetry, h.ctx.publisher("telemetry"), h.ctx.config)
        emitting = asyncio.create_task(emitter.run())
        try:
            changed = datetime.now(UTC)
            await h.ctx.config.change("telemetry.interval_s", "1", "user:t", "faster", changed)
            async with asyncio.timeout(10):
                while len(await h.events("telemetry")) < 2:  # noqa: ASYNC110
                    await asyncio.sleep(0.2)
        finally:
            emitting.cancel()
        first, second = [e.payload for e in await h.events("telemetry")][:2]
        assert isinstance(first, TelemetryRecorded) and isinstance(second, TelemetryRecorded)
        assert second.tunables["telemetry.interval_s"] == "1"
        assert (second.window_end - second.window_start).total_seconds() < 2


async def test_a_projection_reports_how_long_its_records_waited_in_the_log(
    eventlog: EventLog,
) -> None:
    codec = AvroCodec()
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 1), TopicSpec(dlq_topic(topic), 1)])
    await eventlog.append([usage_record(codec, topic, "acme", Decimal(1))])
    await asyncio.sleep(0.5)  # in the log, not applied yet

    async def handler(_: None, event: Event[UsageRecorded]) -> None:
        pass

    projection = Projection.one_at_a_time("g-delay", [topic], {UsageRecorded: handler}, None)
    runner = ProjectionRunner(eventlog, codec, projection)
    delay = WindowMeanDelay(runner)
    assert delay() is None  # nothing applied: nothing to report, never a 0
    running_task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(60):
            while runner.batches == 0:  # noqa: ASYNC110 (the runner offers no event to wait on)
                await asyncio.sleep(0.05)
    finally:
        runner.stop()
        await running_task
    waited = delay()
    assert waited is not None and waited >= 500
    assert delay() is None  # a reading covers the batches since the last one

"""Every process publishes telemetry windows: its gRPC calls timed by the server (a caller's
mistake is no server error), and the effective value of every tunable it holds, every
`telemetry.interval_s` (retuned live)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import grpc
import pytest

from hartonomous.events.payloads import TelemetryRecorded
from hartonomous.runtime.windows import TelemetryEmitter
from hartonomous.v1 import control_pb2 as pb
from hartonomous.v1 import control_pb2_grpc
from services.control.service import ControlService
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

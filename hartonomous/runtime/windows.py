"""Telemetry windows: what a process measured over the last `telemetry.interval_s`, published
as one TelemetryRecorded on `telemetry` (DESIGN.md §3): per operation its requests, server
errors and latency quantiles of that window alone (not a running average), the levels its
services sample (queue depths, consumer lag, batch sizes, cache hit rates), and the effective
value of every tunable it holds.

The recorder costs a list append per request; a window keeps at most MAX_SAMPLES latencies per
operation (a uniform reservoir beyond that), so memory stays bounded under any load.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import grpc
from opentelemetry import trace

from hartonomous.events.payloads import GaugeSample, OperationWindow, TelemetryRecorded
from hartonomous.runtime.grpc_server import metadata_value
from hartonomous.runtime.publisher import Publisher
from hartonomous.telemetry import continue_trace
from hartonomous.tunables import LiveConfig, Value

logger = logging.getLogger(__name__)

INTERVAL_KEY = "telemetry.interval_s"
MAX_SAMPLES = 10_000
SERVER_ERRORS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)
"""Statuses that are the server's failure, not the caller's mistake."""

Read = Callable[[], float | None]


def quantile(sorted_values: list[float], q: float) -> float:
    """The nearest-rank q-quantile of sorted values (one of the values, never interpolated)."""
    return sorted_values[max(0, math.ceil(q * len(sorted_values)) - 1)]


@dataclass
class _Operation:
    requests: int = 0
    errors: int = 0
    samples: list[float] = field(default_factory=list)  # milliseconds

    def add(self, ms: float, failed: bool, rng: random.Random) -> None:
        self.requests += 1
        self.errors += failed
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(ms)
        else:  # reservoir: every request of the window is equally likely to be kept
            slot = rng.randrange(self.requests)
            if slot < MAX_SAMPLES:
                self.samples[slot] = ms

    def window(self, name: str) -> OperationWindow:
        ordered = sorted(self.samples)
        if not ordered:
            return OperationWindow(operation=name, requests=self.requests, errors=self.errors)
        return OperationWindow(
            operation=name,
            requests=self.requests,
            errors=self.errors,
            p50_ms=quantile(ordered, 0.50),
            p95_ms=quantile(ordered, 0.95),
            p99_ms=quantile(ordered, 0.99),
        )


@dataclass(frozen=True)
class _Gauge:
    name: str
    labels: Mapping[str, str]
    read: Read


class WindowRecorder:
    """One process's measurements since its last window."""

    def __init__(self, service: str, instance: str, now: Callable[[], datetime] | None = None):
        self.service = service
        self.instance = instance
        self._now = now or (lambda: datetime.now(UTC))
        self._started = self._now()
        self._operations: dict[str, _Operation] = {}
        self._gauges: list[_Gauge] = []
        self._rng = random.Random(0)

    def observe(self, operation: str, seconds: float, *, failed: bool = False) -> None:
        """One finished request of `operation`, its latency, and whether the server failed it."""
        stats = self._operations.get(operation)
        if stats is None:
            stats = self._operations[operation] = _Operation()
        stats.add(seconds * 1000.0, failed, self._rng)

    def gauge(self, name: str, read: Read, **labels: str) -> None:
        """A level sampled at each window's end; `read` returning None (not measured yet)
        leaves it out of that window: missing data is never reported as a value."""
        self._gauges.append(_Gauge(name, labels, read))

    def close(self, tunables: Mapping[str, str]) -> TelemetryRecorded:
        """The window so far, and a new one from now."""
        end = self._now()
        operations, self._operations = self._operations, {}
        gauges = []
        for gauge in self._gauges:
            value = gauge.read()
            if value is not None and math.isfinite(value):
                gauges.append(GaugeSample(name=gauge.name, labels=dict(gauge.labels), value=value))
        window = TelemetryRecorded(
            service=self.service,
            instance=self.instance,
            window_start=self._started,
            window_end=end,
            operations=[stats.window(name) for name, stats in sorted(operations.items())],
            gauges=gauges,
            tunables=dict(tunables),
        )
        self._started = end
        return window


class TelemetryEmitter:
    """Publishes a window every `telemetry.interval_s` (retuned live) until cancelled."""

    def __init__(self, recorder: WindowRecorder, publisher: Publisher, config: LiveConfig):
        self._recorder = recorder
        self._publisher = publisher
        self._config = config
        self._interval = float(config.watch(INTERVAL_KEY, self._retune))
        self._retuned = asyncio.Event()

    def _retune(self, interval: Value) -> None:
        self._interval = float(interval)
        self._retuned.set()

    async def run(self) -> None:
        while True:
            self._retuned.clear()
            try:  # a new interval starts a new wait at once
                await asyncio.wait_for(self._retuned.wait(), self._interval)
                continue
            except TimeoutError:
                pass
            await self.publish()

    async def publish(self) -> None:
        window = self._recorder.close(self._config.held())
        try:
            event = self._publisher.new(window, tenant_id="platform")
            await self._publisher.publish(event)
        except Exception:  # a window lost is a gap the loop reads as missing data
            logger.exception("publishing a telemetry window failed")


class TimingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped base
    """Every gRPC call's latency and outcome into the recorder (health and reflection left
    out): the server half of the operations in a window. Each call also runs in a server span
    that continues the caller's `traceparent`, so the spans a handler opens nest under it."""

    def __init__(self, recorder: WindowRecorder) -> None:
        self._recorder = recorder

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = await continuation(handler_call_details)
        operation = str(handler_call_details.method).lstrip("/")
        if handler is None or operation.startswith(("grpc.health", "grpc.reflection")):
            return handler
        return _timed(handler, operation, self._recorder)


def _server_span(
    operation: str, context: grpc.aio.ServicerContext[Any, Any]
) -> AbstractContextManager[trace.Span]:
    traceparent = metadata_value(context, "traceparent")
    return continue_trace(operation, traceparent, kind=trace.SpanKind.SERVER)


def _timed(handler: Any, operation: str, recorder: WindowRecorder) -> Any:
    """The same handler, observing each call's duration when its context is done."""

    def watch(context: grpc.aio.ServicerContext[Any, Any]) -> None:
        started = time.perf_counter()

        def done(ctx: Any) -> None:
            failed = ctx.code() in SERVER_ERRORS
            recorder.observe(operation, time.perf_counter() - started, failed=failed)

        context.add_done_callback(done)

    def unary(behavior: Any) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            watch(context)
            with _server_span(operation, context):
                return await behavior(request, context)

        return call

    def streaming(behavior: Any) -> Any:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            watch(context)
            with _server_span(operation, context):
                async for message in behavior(request, context):
                    yield message

        return call

    kinds = {
        "unary_unary": (handler.unary_unary, unary, grpc.unary_unary_rpc_method_handler),
        "unary_stream": (handler.unary_stream, streaming, grpc.unary_stream_rpc_method_handler),
        "stream_unary": (handler.stream_unary, unary, grpc.stream_unary_rpc_method_handler),
        "stream_stream": (
            handler.stream_stream,
            streaming,
            grpc.stream_stream_rpc_method_handler,
        ),
    }
    for behavior, wrap, make in kinds.values():
        if behavior is not None:
            return make(
                wrap(behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler

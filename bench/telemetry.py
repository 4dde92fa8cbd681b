"""What telemetry windows cost a serving process: 64 concurrent clients call a trivial unary gRPC
method back to back on one aio server, with the platform's telemetry (the timing interceptor
on every call, a TelemetryRecorded window published to the embedded log every second: five
times the default rate) and without it. Rounds alternate the two so drift on a shared machine
falls on both; each reports process CPU per call (client and server in one process: the
difference is telemetry's) and calls per second. The peer is the same server untimed.

Also reported: windows per second per process and the encoded size of one window (every
tunable of the platform held, the operations seen)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc

from bench.common import Metric, median, write
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import TopicSpec
from hartonomous.events.codec import AvroCodec
from hartonomous.postgres import embedded_postgres_url
from hartonomous.runtime.grpc_server import GrpcHost, GrpcRegistration
from hartonomous.runtime.publisher import Publisher
from hartonomous.runtime.windows import (
    INTERVAL_KEY,
    TelemetryEmitter,
    TimingInterceptor,
    WindowRecorder,
)
from hartonomous.tunables import LiveConfig, catalog

CLIENTS = 64
ROUND_S = 8.0
ROUNDS = 4
INTERVAL_S = "1"
SERVICE = "bench.Echo"
METHOD = f"/{SERVICE}/Ping"


async def _ping(request: bytes, context: Any) -> bytes:
    return request


def _register(_: object, server: grpc.aio.Server) -> None:
    handler = grpc.unary_unary_rpc_method_handler(_ping)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE, {"Ping": handler}),)
    )


async def _clients(port: int, seconds: float) -> tuple[int, float]:
    """Calls made in `seconds` by CLIENTS clients, and the process CPU seconds they took."""
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        ping = channel.unary_unary(METHOD)
        await ping(b"warm", timeout=5)
        calls = 0
        deadline = time.monotonic() + seconds

        async def client() -> None:
            nonlocal calls
            while time.monotonic() < deadline:
                await ping(b"ping", timeout=5)
                calls += 1

        cpu = time.process_time()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        return calls, time.process_time() - cpu


async def _round(timed: bool, publisher: Publisher, config: LiveConfig) -> tuple[float, float]:
    """(CPU µs per call, calls per second) of one round."""
    recorder = WindowRecorder("bench", "bench-1")
    host = GrpcHost("127.0.0.1", 0, interceptors=[TimingInterceptor(recorder)] if timed else [])
    port = await host.start([GrpcRegistration(None, _register, SERVICE)])
    emitter = TelemetryEmitter(recorder, publisher, config)
    emitting = asyncio.create_task(emitter.run()) if timed else None
    try:
        calls, cpu = await _clients(port, ROUND_S)
    finally:
        if emitting is not None:
            emitting.cancel()
        await host.stop(grace=1)
    return cpu / calls * 1e6, calls / ROUND_S


async def experiment(pg_url: str) -> list[Metric]:
    event_log = EmbeddedEventLog(pg_url)
    await event_log.start()
    try:
        await event_log.ensure_topics([TopicSpec("telemetry", 1)])
        codec = AvroCodec()
        publisher = Publisher(event_log, codec, "telemetry")
        config = LiveConfig(catalog(), held=catalog())
        await config.change(INTERVAL_KEY, INTERVAL_S, "bench", "bench", datetime.now(UTC))
        runs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
        for _ in range(ROUNDS):
            for timed in (False, True):
                runs[timed].append(await _round(timed, publisher, config))
        published = sum((await event_log.end_offsets("telemetry")).values())
        recorder = WindowRecorder("bench", "bench-1")
        recorder.observe("hartonomous.v1.Inference/Embed", 0.004)
        window = recorder.close(config.held())
        size = len(publisher.record(publisher.new(window, tenant_id="platform")).value)
    finally:
        await event_log.close()
    cpu_on, cpu_off = (median([r[0] for r in runs[t]]) for t in (True, False))
    rate_on, rate_off = (median([r[1] for r in runs[t]]) for t in (True, False))
    windows = published / (ROUNDS * ROUND_S)
    untimed = "the same server, untimed"
    return [
        Metric(
            f"CPU per call, {CLIENTS} clients",
            "µs",
            cpu_on,
            untimed,
            cpu_off,
            higher_is_better=False,
        ),
        Metric(f"calls per second, {CLIENTS} clients", "calls/s", rate_on, untimed, rate_off),
        Metric("CPU added by telemetry per call", "µs", cpu_on - cpu_off, higher_is_better=False),
        Metric(
            f"windows per second (interval {INTERVAL_S} s)",
            "events/s",
            windows,
            higher_is_better=False,
        ),
        Metric("encoded size of one window", "bytes", size, higher_is_better=False),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-telemetry-") as scratch:
        pg_url = embedded_postgres_url(Path(scratch) / "pgdata", cleanup="delete")
        metrics = asyncio.run(experiment(pg_url))
    print(f"wrote {write('telemetry', metrics)}")


if __name__ == "__main__":
    main()

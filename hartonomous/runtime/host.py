"""The composition root: opens the ports from settings, starts the chosen services, runs their
consumers and gRPC servicers in one process, and drains everything on SIGTERM / Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import Sequence

from prometheus_client import start_http_server

from hartonomous.eventlog import open_event_log
from hartonomous.eventlog.topics import provision_topics
from hartonomous.events import AvroCodec
from hartonomous.postgres import postgres_url
from hartonomous.runtime.grpc_server import GrpcHost
from hartonomous.runtime.service import Service, ServiceContext, Wiring, discover
from hartonomous.runtime.windows import TelemetryEmitter, TimingInterceptor
from hartonomous.settings import Settings

logger = logging.getLogger("hartonomous")


def select(names: Sequence[str] | None) -> list[Service]:
    available = discover()
    if not names:
        return list(available.values())
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"unknown service(s) {unknown}; available: {sorted(available)}")
    return [available[n] for n in names]


def settle_heap() -> None:
    """What exists now lives as long as the process (modules, clients, a model's compiled
    shapes): out of the cyclic collector's sight, a full collection no longer walks it. Each
    one walked JAX's ~70,000 objects of the warm-up's compiled shapes: a 22-25 ms pause of the
    whole process every ~8 s under sequential searches, the slowest 1% of them (measured). The
    garbage made so far is collected first, or it would be kept for good."""
    gc.collect()
    gc.freeze()


async def run(
    settings: Settings, services: Sequence[Service], ready: asyncio.Event | None = None
) -> None:
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    pg_url = await asyncio.to_thread(postgres_url, settings)
    event_log = open_event_log(settings, pg_url)
    await event_log.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started: list[Service] = []
    stack = contextlib.ExitStack()
    grpc_host: GrpcHost | None = None
    emitting: asyncio.Task[None] | None = None
    try:
        await provision_topics(event_log, settings.topic_provisioning)
        ctx = await ServiceContext.following_control(
            settings, event_log, AvroCodec(), pg_url, [s.name for s in services]
        )
        ctx.settle = settle_heap
        timing = TimingInterceptor(ctx.telemetry)
        grpc_host = GrpcHost(settings.grpc_host, settings.grpc_port, interceptors=[timing])
        wiring = Wiring(consumers=[ctx.runner(ctx.control_projection())])
        for service in services:
            part = await service.start(ctx)
            started.append(service)
            wiring.consumers += part.consumers
            wiring.grpc += part.grpc
        port = await grpc_host.start(wiring.grpc)
        if settings.metrics_port:
            metrics_server, _ = start_http_server(settings.metrics_port, settings.grpc_host)
            stack.callback(metrics_server.shutdown)
        logger.info(
            "platform up",
            extra={
                "services": [s.name for s in services],
                "grpc_port": port,
                "metrics_port": settings.metrics_port,
                "data_dir": str(settings.data_dir),
            },
        )
        settle_heap()
        tasks = [asyncio.create_task(c.run(), name=c.group) for c in wiring.consumers]
        emitter = TelemetryEmitter(ctx.telemetry, ctx.publisher("telemetry"), ctx.config)
        emitting = asyncio.create_task(emitter.run(), name="telemetry")
        if ready is not None:
            ready.set()
        waiter = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait([waiter, *tasks], return_when=asyncio.FIRST_COMPLETED)
        logger.info("draining")
        for consumer in wiring.consumers:
            consumer.stop()
        await asyncio.gather(*tasks, return_exceptions=True)
        waiter.cancel()
        for task in done - {waiter}:
            task.result()  # a consumer that crashed: its error, now that the rest drained
    finally:
        if emitting is not None:
            emitting.cancel()
        stack.close()
        if grpc_host is not None:
            await grpc_host.stop()
        for service in reversed(started):
            await service.stop()
        await event_log.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        logger.info("stopped")

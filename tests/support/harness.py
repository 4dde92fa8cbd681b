"""The one way tests start services: as the runtime does (`hartonomous up`), on a real embedded
log in a real Postgres database, a real data dir, every servicer on one loopback gRPC server,
and the projections run when the test says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from typing import Any, Generic, TypeVar

import asyncpg
import grpc

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec, Event, decode_event
from hartonomous.events.payloads import ConfigChanged, Payload
from hartonomous.runtime.grpc_server import GrpcHost, GrpcRegistration
from hartonomous.runtime.projection import ProjectionRunner
from hartonomous.runtime.publisher import Publisher
from hartonomous.runtime.service import Service, ServiceContext, Wiring
from hartonomous.runtime.windows import TimingInterceptor
from hartonomous.settings import Settings
from tests.support.platform import free_port

CODEC = AvroCodec()


async def open_log(pg_url: str, partitions: int = 2) -> EmbeddedEventLog:
    """A started embedded log with every platform topic (fast heartbeats: quick rebalances)."""
    event_log = EmbeddedEventLog(pg_url, heartbeat_interval=0.3, session_timeout=3.0)
    await event_log.start()
    await event_log.ensure_topics(platform_topics(partitions=partitions))
    return event_log


@asynccontextmanager
async def embedded_log(pg_url: str, partitions: int = 2) -> AsyncIterator[EmbeddedEventLog]:
    event_log = await open_log(pg_url, partitions)
    try:
        yield event_log
    finally:
        await event_log.close()


@dataclass
class Harness:
    """Started services and what a test drives them with."""

    services: Sequence[Service]
    ctx: ServiceContext
    wiring: Wiring
    host: GrpcHost
    channel: grpc.aio.Channel
    control: ProjectionRunner[Any]  # this process's follower of the control topic
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def event_log(self) -> EmbeddedEventLog:
        assert isinstance(self.ctx.event_log, EmbeddedEventLog)
        return self.ctx.event_log

    @property
    def pg_url(self) -> str:
        return self.ctx.postgres_url

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def consumers(self) -> list[ProjectionRunner[Any]]:
        return self.wiring.consumers

    def run_consumers(self) -> None:
        """The services' projections, and the follower that applies control changes."""
        runners = [*self.consumers, self.control]
        self.tasks = [asyncio.create_task(c.run(), name=c.group) for c in runners]

    async def stop_consumers(self) -> None:
        for consumer in [*self.consumers, self.control]:
            consumer.stop()
        tasks, self.tasks = self.tasks, []
        await asyncio.gather(*tasks)

    async def events(self, topic: str) -> list[Event[Payload]]:
        return [decode_event(CODEC, r) async for r in self.event_log.replay(topic, from_offset=0)]

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.pg_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

    async def stop(self) -> None:
        """Drain the projections, close the channel and server, stop the services."""
        await self.stop_consumers()
        await self.channel.close()
        await self.host.stop(grace=0)
        for service in reversed(self.services):
            await service.stop()


S = TypeVar("S", bound=Service)


@dataclass
class Started(Generic[S]):
    """One started service and its harness: the base of a test package's own fixture type."""

    service: S
    harness: Harness

    @property
    def event_log(self) -> EmbeddedEventLog:
        return self.harness.event_log

    @property
    def pg_url(self) -> str:
        return self.harness.pg_url

    async def events(self, topic: str) -> list[Event[Payload]]:
        return await self.harness.events(topic)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        return await self.harness.sql(query, *args)


async def start(
    *services: Service,
    event_log: EmbeddedEventLog,
    pg_url: str,
    settings: Settings | None = None,
    consume: bool = True,
    peers: Sequence[GrpcRegistration] = (),
) -> Harness:
    """Start `services` on `event_log` with one gRPC server on a free loopback port (each
    service reaches its peers there, as under `hartonomous up`). `peers`: stand-in servicers
    served there too, for a service tested without the real ones."""
    port = free_port()
    ctx = await ServiceContext.following_control(
        replace(settings or Settings(), grpc_port=port),
        event_log,
        CODEC,
        pg_url,
        [service.name for service in services],
    )
    host = GrpcHost("127.0.0.1", port, interceptors=[TimingInterceptor(ctx.telemetry)])
    wiring = Wiring(grpc=list(peers))
    started: list[Service] = []
    try:
        for service in services:
            part = await service.start(ctx)
            started.append(service)
            wiring.consumers += part.consumers
            wiring.grpc += part.grpc
        await host.start(wiring.grpc)
    except BaseException:
        for service in reversed(started):
            await service.stop()
        raise
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    harness = Harness(started, ctx, wiring, host, channel, ctx.runner(ctx.control_projection()))
    if consume:
        harness.run_consumers()
    return harness


async def set_tunable(event_log: EmbeddedEventLog, key: str, value: str) -> None:
    """Change a tunable as an operator would: a ConfigChanged on `control`."""
    change = ConfigChanged(key=key, new_value=value, reason="set by a test", actor="user:tests")
    publisher = Publisher(event_log, CODEC, "tests")
    await publisher.publish(publisher.new(change, tenant_id="platform"))


@asynccontextmanager
async def running(
    *services: Service,
    pg_url: str,
    settings: Settings | None = None,
    consume: bool = True,
    partitions: int = 2,
    peers: Sequence[GrpcRegistration] = (),
    tunables: Mapping[str, str] | None = None,
) -> AsyncIterator[Harness]:
    """`start` on a log of its own, stopped (with the log) afterwards; `tunables` are set on
    the control topic first, so the services open with them."""
    async with embedded_log(pg_url, partitions) as event_log:
        for key, value in (tunables or {}).items():
            await set_tunable(event_log, key, value)
        harness = await start(
            *services,
            event_log=event_log,
            pg_url=pg_url,
            settings=settings,
            consume=consume,
            peers=peers,
        )
        try:
            yield harness
        finally:
            await harness.stop()

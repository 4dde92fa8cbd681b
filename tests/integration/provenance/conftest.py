from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import EventLog
from hartonomous.eventlog.topics import DOMAIN_TOPICS, platform_topics
from hartonomous.events import AvroCodec
from hartonomous.runtime.grpc_server import GrpcHost
from hartonomous.runtime.service import ServiceContext
from hartonomous.settings import Settings
from hartonomous.v1 import provenance_pb2_grpc
from services.provenance import ProvenanceService
from services.provenance.domain import Position
from tests.support.provenance_flow import Keyed, records

SETTLE_TIMEOUT_S = 30.0


async def settled(
    log: EventLog,
    positions: Callable[[], Awaitable[Mapping[Position, int]]],
    timeout: float = SETTLE_TIMEOUT_S,
) -> None:
    """Wait until the graph has applied (`positions`) everything the log holds."""
    deadline = time.monotonic() + timeout
    while True:
        applied = await positions()
        behind = [
            (topic, part)
            for topic in DOMAIN_TOPICS
            for part, end in (await log.end_offsets(topic)).items()
            if applied.get((topic, part), 0) < end
        ]
        if not behind:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the graph did not catch up with {behind}")
        await asyncio.sleep(0.05)


@dataclass
class Provenance:
    """The provenance service on a real embedded log and graph, with its gRPC server."""

    service: ProvenanceService
    log: EmbeddedEventLog
    codec: AvroCodec
    stub: provenance_pb2_grpc.ProvenanceStub

    async def append(self, events: list[Keyed]) -> None:
        await self.log.append_atomic(records(self.codec, events))

    async def settled(self) -> None:
        await settled(self.log, self.service.store.positions)


@pytest.fixture
async def provenance(pg_url: str, tmp_path: Path) -> AsyncIterator[Provenance]:
    log = EmbeddedEventLog(pg_url, heartbeat_interval=0.3, session_timeout=3.0)
    await log.start()
    await log.ensure_topics(platform_topics(partitions=2))
    codec = AvroCodec()
    service = ProvenanceService(max_batch=50)
    wiring = await service.start(ServiceContext(Settings(data_dir=tmp_path), log, codec, pg_url))
    host = GrpcHost("127.0.0.1", 0)
    port = await host.start(wiring.grpc)
    (projector,) = wiring.consumers
    consuming = asyncio.create_task(projector.run())
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = provenance_pb2_grpc.ProvenanceStub(channel)  # type: ignore[no-untyped-call]
            yield Provenance(service, log, codec, stub)
    finally:
        projector.stop()
        await consuming
        await host.stop(grace=0)
        await service.stop()
        await log.close()

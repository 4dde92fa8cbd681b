from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from hartonomous.eventlog.port import EventLog
from hartonomous.eventlog.topics import DOMAIN_TOPICS
from hartonomous.settings import Settings
from hartonomous.v1 import provenance_pb2_grpc
from services.provenance.domain import Partition
from services.provenance.service import ProvenanceService
from tests.support.harness import CODEC, Started, running
from tests.support.provenance_flow import Keyed, records

SETTLE_TIMEOUT_S = 30.0


async def settled(
    event_log: EventLog,
    positions: Callable[[], Awaitable[Mapping[Partition, int]]],
    timeout: float = SETTLE_TIMEOUT_S,
) -> None:
    """Wait until the graph has applied (`positions`) everything the log holds."""
    deadline = time.monotonic() + timeout
    while True:
        applied = await positions()
        behind = [
            (topic, part)
            for topic in DOMAIN_TOPICS
            for part, end in (await event_log.end_offsets(topic)).items()
            if applied.get((topic, part), 0) < end
        ]
        if not behind:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the graph did not catch up with {behind}")
        await asyncio.sleep(0.05)


class Provenance(Started[ProvenanceService]):
    """The provenance service started by the test harness, its projection running."""

    @property
    def stub(self) -> provenance_pb2_grpc.ProvenanceStub:
        return provenance_pb2_grpc.ProvenanceStub(self.harness.channel)  # type: ignore[no-untyped-call]

    async def append(self, events: list[Keyed]) -> None:
        await self.event_log.append_atomic(records(CODEC, events))

    async def settled(self) -> None:
        await settled(self.event_log, self.service.store.positions)


@asynccontextmanager
async def started(
    pg_url: str, data_dir: Path, service: ProvenanceService
) -> AsyncIterator[Provenance]:
    settings = Settings(data_dir=data_dir)
    small = {"provenance.consumer.max_batch": "50"}  # several batches in each test
    async with running(service, pg_url=pg_url, settings=settings, tunables=small) as harness:
        yield Provenance(service, harness)


@pytest.fixture
async def provenance(pg_url: str, tmp_path: Path) -> AsyncIterator[Provenance]:
    async with started(pg_url, tmp_path, ProvenanceService()) as provenance:
        yield provenance


@pytest.fixture(params=["embedded", "neo4j"])
async def provenance_on_each_graph(
    request: pytest.FixtureRequest, pg_url: str, tmp_path: Path
) -> AsyncIterator[Provenance]:
    """The service on either engine: Neo4j in a namespace of its own, dropped afterwards."""
    if request.param == "embedded":
        async with started(pg_url, tmp_path, ProvenanceService()) as provenance:
            yield provenance
        return
    from services.provenance.graph.neo4j import Neo4jGraphStore
    from tests.support.neo4j_server import neo4j_auth, neo4j_uri

    def neo4j(_: Settings) -> Neo4jGraphStore:
        return Neo4jGraphStore(neo4j_uri(), *neo4j_auth(), namespace=namespace)

    namespace = f"Svc{uuid.uuid4().hex[:12]}"
    try:
        async with started(pg_url, tmp_path, ProvenanceService(graph=neo4j)) as provenance:
            yield provenance
    finally:
        store = neo4j(Settings(data_dir=tmp_path))
        await store.open()
        await store.drop()
        await store.close()

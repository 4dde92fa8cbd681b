"""Metering is atomic with the work it bills: ingest appends its domain events and the
UsageRecorded in one log transaction, so a fault between the two writes leaves neither."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import asyncpg
import grpc
import pytest

from hartonomous.settings import Settings
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc
from services.ingest.service import IngestService
from tests.integration.billing.conftest import USAGE_WRITE_FAULT
from tests.support.harness import running


def requests(data: bytes) -> Iterator[ingest_pb2.IngestRequest]:
    yield ingest_pb2.IngestRequest(header=ingest_pb2.IngestHeader(tenant_id="acme"))
    yield ingest_pb2.IngestRequest(data=data)


async def test_a_fault_before_the_usage_write_leaves_no_domain_event(
    pg_url: str, tmp_path: Path
) -> None:
    service = IngestService(gc_every=None, storage_every=None)
    settings = Settings(data_dir=tmp_path)
    async with running(service, pg_url=pg_url, settings=settings, consume=False) as harness:
        log = harness.event_log
        conn = await asyncpg.connect(pg_url)
        try:
            await conn.execute(USAGE_WRITE_FAULT)
            stub = ingest_pb2_grpc.IngestStub(harness.channel)
            with pytest.raises(grpc.aio.AioRpcError) as failed:
                await stub.IngestAtom(requests(b"metered or not at all"))
            assert failed.value.code() == grpc.StatusCode.INTERNAL

            for topic in ("atoms", "usage"):
                assert sum((await log.end_offsets(topic)).values()) == 0
                assert [r async for r in log.replay(topic, from_offset=0)] == []
            assert await conn.fetchval("select count(*) from log.records") == 0
            assert await conn.fetchval("select count(*) from ingest.refs") == 0

            # Without the fault the same call appends both, together.
            await conn.execute("drop trigger fail_usage on log.records")
            await stub.IngestAtom(requests(b"metered or not at all"))
            atoms = [r.headers["event_type"] async for r in log.replay("atoms", from_offset=0)]
            usage = [r.headers["event_type"] async for r in log.replay("usage", from_offset=0)]
            assert (atoms[0], usage) == ("AtomIngested", ["UsageRecorded"])
        finally:
            await conn.close()

"""The catalog is a projection of `atoms`: rebuilt by replay it equals the live one, the consumer
applies what other processes appended, and applying is idempotent and order-independent."""

from __future__ import annotations

import asyncio

import asyncpg
import grpc
import pytest

from hartonomous.eventlog.port import StoredRecord
from hartonomous.v1 import ingest_pb2
from services.ingest.domain import payloads
from services.ingest.domain.content import Content
from services.ingest.domain.header import parse_header
from tests.integration.ingest.conftest import (
    PNG,
    Platform,
    prose,
    rebuilt_catalog,
    sha256,
    stream,
)
from tests.support.events import new_event, record_of


async def _ingest_a_mix(platform: Platform) -> None:
    text = prose(900, seed=1).encode()
    await platform.ingest(text, tenant_id="acme", metadata_json='{"v": 1}')
    await platform.ingest(text, tenant_id="globex")
    await platform.ingest(text, tenant_id="acme", metadata_json='{"v": 2}', source_uri="b.txt")
    await platform.ingest(PNG, tenant_id="globex")
    await platform.ingest(b'{"a": [1, 2]}', tenant_id="acme")
    # Two tenants racing on new bytes: both may see "new" and both append AtomIngested.
    racing = prose(400, seed=2).encode()
    await asyncio.gather(
        platform.ingest(racing, tenant_id="acme"), platform.ingest(racing, tenant_id="initech")
    )


async def _records(platform: Platform) -> list[StoredRecord]:
    return [r async for r in platform.event_log.replay("atoms", from_offset=0)]


async def test_a_catalog_rebuilt_from_the_log_equals_the_live_one(platform: Platform) -> None:
    await _ingest_a_mix(platform)
    [consumer] = platform.harness.consumers
    records = await _records(platform)
    await consumer.apply(records)  # the consumer's second application changes nothing
    live = await platform.catalog_rows()
    assert len(live["refs"]) == 6 and live["chunks"]

    conn = await asyncpg.connect(platform.pg_url)
    try:
        await conn.execute("drop schema ingest cascade")
    finally:
        await conn.close()
    await platform.deps.catalog.setup()
    await consumer.apply(records)

    assert await platform.catalog_rows() == live


async def test_applying_in_any_order_gives_the_same_catalog(platform: Platform) -> None:
    await _ingest_a_mix(platform)
    events = await platform.events("atoms")
    assert await rebuilt_catalog(reversed(events)) == await platform.catalog_rows()


async def test_the_consumer_applies_what_another_process_appended(platform: Platform) -> None:
    data = b"appended by another replica"
    atom_id = sha256(data)
    parsed = parse_header(tenant_id="initech", metadata_json='{"from": "elsewhere"}')
    text = Content("text/plain; charset=utf-8", "text", len(data), None)
    event = new_event(payloads.ingested_payload(atom_id, parsed, text), "initech")
    await platform.blobs.put(stream(data))
    await platform.event_log.append_atomic([record_of(event)])
    request = ingest_pb2.GetAtomRequest(tenant_id="initech", atom_id=atom_id)
    with pytest.raises(grpc.aio.AioRpcError):
        await platform.stub.GetAtom(request)

    [consumer] = platform.harness.consumers
    running = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(20):
            while True:
                try:
                    atom = await platform.stub.GetAtom(request)
                    break
                except grpc.aio.AioRpcError:
                    await asyncio.sleep(0.05)
    finally:
        consumer.stop()
        await running
    assert atom.metadata_json == '{"from":"elsewhere"}'
    assert await platform.read("initech", atom_id) == data

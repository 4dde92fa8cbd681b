"""Storage is metered from the ingest catalog: each tenant's referenced bytes times the period's
hours, billed exactly, once per tenant and period however often the period is measured."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.events import decode_event
from hartonomous.events.payloads import StorageMeasured
from hartonomous.settings import Settings
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc
from services.ingest.domain.storage import period_end
from services.ingest.metering import SETTLE, StorageMeter
from services.ingest.service import IngestService
from tests.integration.billing.conftest import Billing, usage
from tests.support.harness import CODEC, start

EVERY = timedelta(hours=2)


def requests(tenant: str, data: bytes) -> Iterator[ingest_pb2.IngestRequest]:
    yield ingest_pb2.IngestRequest(header=ingest_pb2.IngestHeader(tenant_id=tenant))
    yield ingest_pb2.IngestRequest(data=data)


@asynccontextmanager
async def ingested(
    pg_url: str, event_log: EmbeddedEventLog, tmp_path: Path
) -> AsyncIterator[StorageMeter]:
    """acme ingests 100 + 50 bytes, globex the same 100 bytes again (a dedup hit); yields a
    meter on the ingest catalog whose clock stands just after the current period settled."""
    service = IngestService(gc_every=None, storage_every=None)
    settings = Settings(data_dir=tmp_path)
    harness = await start(
        service, event_log=event_log, pg_url=pg_url, settings=settings, consume=False
    )
    try:
        stub = ingest_pb2_grpc.IngestStub(harness.channel)
        for tenant, data in [("acme", b"a" * 100), ("acme", b"b" * 50), ("globex", b"a" * 100)]:
            await stub.IngestAtom(requests(tenant, data))
        assert service.deps is not None
        settled = period_end(datetime.now(UTC), EVERY) + SETTLE
        yield StorageMeter(
            service.deps.catalog, service.deps.publisher, EVERY, clock=lambda: settled
        )
    finally:
        await harness.stop()


async def test_storage_is_billed_in_exact_byte_hours_once_per_period(
    pg_url: str, eventlog: EmbeddedEventLog, billing: Billing, tmp_path: Path
) -> None:
    await billing.put_rates(
        datetime(2020, 1, 1, tzinfo=UTC), ("storage", "byte_hours", "0.000000001")
    )
    async with ingested(pg_url, eventlog, tmp_path) as meter:
        [(start, end)] = await meter.catch_up()  # the period the ingests fell in
        assert end - start == EVERY and await meter.catch_up() == []  # nothing new is due
        await meter.measure(start, end)  # a second run of the same period (another replica)

    measured = [
        decode_event(CODEC, r)
        async for r in eventlog.replay("atoms", from_offset=0)
        if r.headers["event_type"] == "StorageMeasured"
    ]
    assert len(measured) == 4 and len({e.envelope.event_id for e in measured}) == 2
    payloads = [e.payload for e in measured if isinstance(e.payload, StorageMeasured)]
    assert {(p.tenant_id, p.atoms, p.bytes) for p in payloads} == {
        ("acme", 2, 150),
        ("globex", 1, 100),
    }
    assert {(p.period_start, p.period_end) for p in payloads} == {(start, end)}

    # One more usage per tenant, behind the repeated run in its partition: once the ledger has
    # it, it has seen the repeats too.
    await eventlog.append([usage("acme"), usage("globex")])
    await billing.wait_ledger(3 + 2 + 2)  # ingests, storage, the markers
    rows = await billing.sql(
        "select tenant_id, quantity, used_at, amount from billing.ledger"
        " where operation = 'storage' and unit = 'byte_hours' order by tenant_id"
    )
    assert [tuple(r) for r in rows] == [
        ("acme", Decimal(150 * 2), start, Decimal("0.0000003")),
        ("globex", Decimal(100 * 2), start, Decimal("0.0000002")),
    ]
    assert await billing.ledger_size() == 7

"""Billing: usage events/s into the ledger, and CheckQuota latency.

Ledger: a fresh database per run; the ledger consumer is running, N UsageRecorded events are
appended in batches, and the clock stops when the ledger holds them all. Ours applies each
polled batch in one transaction; the peer is the plain per-event handler (one transaction per
event, what the kernel's consumer loop does by default).

CheckQuota: the in-memory book called directly and through the gRPC servicer on loopback,
beside the naive way, a `select sum(...)` over the same ledger per check.

Runs are interleaved (ours, peer, ours, peer ...) and medians reported."""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import grpc

from bench.common import Metric, median, percentile, write
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import Record
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec, Envelope, Event, encode_event
from hartonomous.events.payloads import UsageRecorded
from hartonomous.postgres import embedded_postgres_url
from hartonomous.runtime.grpc_server import GrpcHost
from hartonomous.runtime.projection import ProjectionRunner
from hartonomous.runtime.service import ServiceContext
from hartonomous.settings import Settings
from hartonomous.v1 import billing_pb2, billing_pb2_grpc
from services.billing.domain import Period, QuotaRule, period_bounds
from services.billing.pricing import parse_rate_table
from services.billing.quota import QuotaBook
from services.billing.service import BillingService

REPS = 3
EVENTS = 5_000
APPEND_BATCH = 500
TENANTS = 50
CHECKS = 20_000
GRPC_CHECKS = 2_000
SQL_CHECKS = 1_000
CODEC = AvroCodec()

_SUM = """
select coalesce(sum(quantity), 0) from billing.ledger
where tenant_id = $1 and operation = $2 and unit = $3 and used_at >= $4
"""


def usage(tenant: str) -> Record:
    envelope = Envelope.new("UsageRecorded", tenant_id=tenant, produced_by="bench")
    payload = UsageRecorded(
        tenant_id=tenant,
        operation="embed",
        unit="tokens",
        quantity=Decimal("128.000000000"),
        resource_id="minilm@1",
        used_at=datetime.now(UTC),
        dimensions={"device": "cpu"},
    )
    return encode_event(CODEC, Event(envelope, payload), "usage", tenant)


async def fresh_database(server: str) -> str:
    name = "bench_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(server)
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    return urlunsplit(urlsplit(server)._replace(path="/" + name))


async def put_rates(service: BillingService) -> None:
    """A price and a multiplier that every event matches: pricing is part of the work."""
    assert service.store is not None
    table = parse_rate_table(
        datetime(2020, 1, 1, tzinfo=UTC),
        "USD",
        [("embed", "tokens", "0.0000001")],
        [("device", "cpu", "0.5")],
    )
    await service.store.put_rates(table)


async def ledger_holds(db: asyncpg.Connection | asyncpg.Pool, size: int) -> None:
    while True:  # polled: the consumer signals nothing
        if await db.fetchval("select count(*) from billing.ledger") >= size:
            return
        await asyncio.sleep(0.01)


async def ledger_rate(server: str, batched: bool) -> float:
    """Events/s from the first append until the ledger holds all EVENTS."""
    url = await fresh_database(server)
    event_log = EmbeddedEventLog(url)
    await event_log.start()
    await event_log.ensure_topics(platform_topics())
    service = BillingService()
    wiring = await service.start(ServiceContext(Settings(), event_log, CODEC, url))
    await put_rates(service)
    [loop] = wiring.consumers
    if not batched:  # each event in a transaction of its own
        loop = ProjectionRunner(event_log, CODEC, replace(loop.projection, atomic=False))
    runner = asyncio.create_task(loop.run())
    records = [usage(f"tenant-{i % TENANTS}") for i in range(EVENTS)]
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        for i in range(0, EVENTS, APPEND_BATCH):
            await event_log.append(records[i : i + APPEND_BATCH])
        await ledger_holds(conn, EVENTS)
        return EVENTS / (time.perf_counter() - started)
    finally:
        await conn.close()
        loop.stop()
        await runner
        await service.stop()
        await event_log.close()


def direct_checks(book: QuotaBook) -> list[float]:
    """Microseconds per QuotaBook.check."""
    samples = []
    one = Decimal(1)
    for i in range(CHECKS):
        tenant = f"tenant-{i % TENANTS}"
        started = time.perf_counter_ns()
        book.check(tenant, "embed", one)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


async def grpc_checks(stub: billing_pb2_grpc.BillingStub) -> list[float]:
    """Milliseconds per CheckQuota round trip on loopback."""
    samples = []
    for i in range(GRPC_CHECKS):
        request = billing_pb2.QuotaCheckRequest(
            tenant_id=f"tenant-{i % TENANTS}", operation="embed", quantity="1"
        )
        started = time.perf_counter()
        await stub.CheckQuota(request)
        samples.append((time.perf_counter() - started) * 1000)
    return samples


async def sql_checks(pool: asyncpg.Pool) -> list[float]:
    """Microseconds per naive check: the period's sum from the ledger, compared in Python."""
    since = period_bounds(datetime.now(UTC), Period.MONTH)[0]
    samples = []
    for i in range(SQL_CHECKS):
        started = time.perf_counter_ns()
        used = await pool.fetchval(_SUM, f"tenant-{i % TENANTS}", "embed", "tokens", since)
        _ = used + 1 <= Decimal(10**12)
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples


async def quota_latency(server: str) -> tuple[list[list[float]], list[list[float]], list[float]]:
    """A ledger of EVENTS usage rows, then interleaved runs of direct and naive SQL checks,
    and gRPC checks."""
    url = await fresh_database(server)
    event_log = EmbeddedEventLog(url)
    await event_log.start()
    await event_log.ensure_topics(platform_topics())
    service = BillingService()
    wiring = await service.start(ServiceContext(Settings(), event_log, CODEC, url))
    await put_rates(service)
    runner = asyncio.create_task(wiring.consumers[0].run())
    host = GrpcHost("127.0.0.1", 0)
    port = await host.start(wiring.grpc)
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None and service.store is not None and service.book is not None
    try:
        limit = Decimal(10**12)
        for t in range(TENANTS):
            rule = QuotaRule(f"tenant-{t}", "embed", limit, "tokens", Period.MONTH, Decimal("0.8"))
            await service.store.put_quota(rule, plan=None)
            service.book.put_rule(rule)
        assert service.book.check("tenant-0", "embed", Decimal(0)).rule is not None
        for i in range(0, EVENTS, APPEND_BATCH):
            await event_log.append(
                [usage(f"tenant-{j % TENANTS}") for j in range(i, i + APPEND_BATCH)]
            )
        await ledger_holds(pool, EVENTS)
        await pool.execute("analyze billing.ledger")
        direct: list[list[float]] = []
        naive: list[list[float]] = []
        for _ in range(REPS):
            direct.append(direct_checks(service.book))
            naive.append(await sql_checks(pool))
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = billing_pb2_grpc.BillingStub(channel)  # type: ignore[no-untyped-call]
            remote = await grpc_checks(stub)
        return direct, naive, remote
    finally:
        await pool.close()
        await host.stop(grace=0)
        wiring.consumers[0].stop()
        await runner
        await service.stop()
        await event_log.close()


async def interleave(runs: list[Callable[[], Awaitable[float]]]) -> list[list[float]]:
    results: list[list[float]] = [[] for _ in runs]
    for _ in range(REPS):
        for i, run in enumerate(runs):
            results[i].append(await run())
    return results


async def measure() -> list[Metric]:
    server = embedded_postgres_url(
        Path(tempfile.mkdtemp(prefix="bench-billing-")) / "pgdata", cleanup="delete"
    )
    batched, per_event = await interleave(
        [lambda: ledger_rate(server, True), lambda: ledger_rate(server, False)]
    )
    direct, naive, remote = await quota_latency(server)
    peer = "select sum() per check"

    def at(runs: list[list[float]], q: float) -> float:
        return median([percentile(run, q) for run in runs])

    return [
        Metric(
            "usage events into the ledger",
            "events/s",
            median(batched),
            "one transaction per event",
            median(per_event),
        ),
        Metric("CheckQuota in-process p50", "us", at(direct, 50), peer, at(naive, 50), False),
        Metric("CheckQuota in-process p99", "us", at(direct, 99), peer, at(naive, 99), False),
        Metric("CheckQuota gRPC loopback p50", "ms", percentile(remote, 50), None, None, False),
        Metric("CheckQuota gRPC loopback p99", "ms", percentile(remote, 99), None, None, False),
    ]


def main() -> None:
    path = write("billing", asyncio.run(measure()))
    print(f"wrote {path}", flush=True)

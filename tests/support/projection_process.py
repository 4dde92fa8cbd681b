"""A real projection process for crash tests, run by the kernel's projection runner on one
topic: `totals` (UsageRecorded -> per-tenant totals through the Inbox, the smallest projection
there is), `billing` (the billing service's real ledger projection) or `provenance` (the
provenance service's real graph projection into an embedded graph file). Run as

    python -m tests.support.projection_process KIND --postgres-url URL --topic T
        [--kafka-bootstrap B] [--graph FILE] [--delay S] [--until N]

After each transaction commits it prints `applied N` and holds still `--delay` seconds before
the group's offsets are committed (where a kill loses the most). At the end it prints how many
re-delivered records the claim skipped, so a test can prove a re-delivery really happened
after a SIGKILL."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.kafka import KafkaEventLog
from hartonomous.eventlog.port import EventLog, Position, StoredRecord
from hartonomous.events import AvroCodec, Event
from hartonomous.events.payloads import UsageRecorded
from hartonomous.postgres import create_pool
from hartonomous.runtime.inbox import Connection, Inbox
from hartonomous.runtime.projection import Projection, ProjectionRunner
from services.billing.handlers import ledger_projection
from services.billing.quota import QuotaBook, utc_now
from services.billing.store import BillingStore
from services.provenance.graph.embedded import EmbeddedGraphStore
from services.provenance.projector import graph_projection

SCHEMA = "usage_projection"
GROUP = "crash-test"

Applied = Callable[[], Awaitable[int]]


class Totals:
    """One transaction of the `totals` projection."""

    def __init__(self, conn: Connection, inbox: Inbox) -> None:
        self._conn = conn
        self._inbox = inbox

    async def claim(self, records: Sequence[StoredRecord]) -> set[Position]:
        return await self._inbox.claim(self._conn, records)

    async def add(self, usage: UsageRecorded) -> None:
        await self._conn.execute(
            f"insert into {SCHEMA}.totals values ($1, $2, 1) on conflict (tenant_id)"
            f" do update set quantity = {SCHEMA}.totals.quantity + excluded.quantity,"
            f" events = {SCHEMA}.totals.events + 1",
            usage.tenant_id,
            usage.quantity,
        )


async def on_usage_recorded(totals: Totals, event: Event[UsageRecorded]) -> None:
    await totals.add(event.payload)


async def totals_projection(pool: asyncpg.Pool) -> tuple[Projection[Any], Applied]:
    inbox = Inbox(SCHEMA, GROUP)
    async with pool.acquire() as conn:
        await inbox.setup(conn)
        await conn.execute(
            f"create table if not exists {SCHEMA}.totals ("
            " tenant_id text primary key, quantity numeric not null, events bigint not null)"
        )

    @asynccontextmanager
    async def transaction() -> AsyncIterator[Totals]:
        async with pool.acquire() as conn, conn.transaction():
            yield Totals(conn, inbox)

    async def applied() -> int:
        return int(await pool.fetchval(f"select coalesce(sum(events), 0) from {SCHEMA}.totals"))

    projection = Projection(GROUP, [], {UsageRecorded: on_usage_recorded}, transaction)
    return replace(projection, claim=Totals.claim), applied


async def billing_projection(pool: asyncpg.Pool) -> tuple[Projection[Any], Applied]:
    store = BillingStore(pool)
    await store.setup()

    async def applied() -> int:
        return int(await pool.fetchval("select count(*) from billing.ledger"))

    return ledger_projection(store, QuotaBook(utc_now)), applied


async def provenance_projection(graph: Path) -> tuple[Projection[Any], Applied]:
    store = EmbeddedGraphStore(graph)
    await store.open()

    async def applied() -> int:
        return sum((await store.positions()).values())

    return graph_projection(store), applied


class Skips:
    """Re-delivered records the projection's claim recognised, over the process's life."""

    count = 0


def instrumented(projection: Projection[Any], applied: Applied, delay: float) -> Projection[Any]:
    """The projection, counting what its claim skips, and after each committed transaction
    printing how many records are applied, then holding still for `delay` seconds."""
    claim = projection.claim
    assert claim is not None

    async def counted(tx: Any, records: Sequence[StoredRecord]) -> set[Position]:
        fresh = set(await claim(tx, records))
        Skips.count += len(records) - len(fresh)
        return fresh

    @asynccontextmanager
    async def slowed() -> AsyncIterator[Any]:
        async with projection.transaction() as tx:
            yield tx
        print(f"applied {await applied()}", flush=True)
        await asyncio.sleep(delay)

    return replace(projection, claim=counted, transaction=slowed, max_batch=10)


def crash_noticing_log(kafka_bootstrap: str | None, postgres_url: str) -> EventLog:
    """The log with short consumer-group sessions: a restart after a SIGKILL waits for the dead
    member's session to lapse (10 s by default) before its partitions move."""
    if kafka_bootstrap:
        return KafkaEventLog(kafka_bootstrap, session_timeout_ms=6_000)  # the broker's minimum
    return EmbeddedEventLog(postgres_url, session_timeout=3.0)


async def main(args: argparse.Namespace) -> None:
    pool = await create_pool(args.postgres_url, max_size=3)
    if args.kind == "totals":
        projection, applied = await totals_projection(pool)
    elif args.kind == "billing":
        projection, applied = await billing_projection(pool)
    else:
        projection, applied = await provenance_projection(Path(args.graph))
    projection = replace(projection, group=GROUP, topics=[args.topic])
    event_log = crash_noticing_log(args.kafka_bootstrap, args.postgres_url)
    await event_log.start()
    runner = ProjectionRunner(event_log, AvroCodec(), instrumented(projection, applied, args.delay))
    running = asyncio.create_task(runner.run())
    print("started", flush=True)
    while args.until is None or await applied() < args.until:
        if running.done():
            running.result()
        await asyncio.sleep(0.1)
    runner.stop()
    await running
    print(f"skipped {Skips.count}", flush=True)
    await event_log.close()
    await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=["totals", "billing", "provenance"])
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--kafka-bootstrap", default=None)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--graph", default=None, help="provenance: the embedded graph file")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--until", type=int, default=None, help="exit once this many applied")
    asyncio.run(main(parser.parse_args()))

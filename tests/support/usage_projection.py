"""A real projection process for crash tests: UsageRecorded -> per-tenant totals in Postgres,
applied exactly once by the kernel's projection runner and Inbox. Run as
`python -m tests.support.usage_projection --postgres-url URL --topic T [--kafka-bootstrap B]`.

It prints how many re-delivered records the inbox skipped, so a test can prove a re-delivery
really happened after a SIGKILL."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

import asyncpg

from hartonomous.eventlog import open_event_log
from hartonomous.eventlog.port import Position, StoredRecord
from hartonomous.events import AvroCodec, Event
from hartonomous.events.payloads import UsageRecorded
from hartonomous.runtime.inbox import Connection, Inbox
from hartonomous.runtime.projection import Projection, ProjectionRunner
from hartonomous.settings import Settings

SCHEMA = "usage_projection"


class Totals:
    """One transaction of the projection."""

    skipped = 0  # re-delivered records the inbox recognised, over the process's life

    def __init__(self, conn: Connection, inbox: Inbox) -> None:
        self._conn = conn
        self._inbox = inbox

    async def claim(self, records: Sequence[StoredRecord]) -> set[Position]:
        fresh = await self._inbox.claim(self._conn, records)
        Totals.skipped += len(records) - len(fresh)
        return fresh

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


async def setup(pool: asyncpg.Pool, inbox: Inbox) -> None:
    async with pool.acquire() as conn:
        await inbox.setup(conn)
        await conn.execute(
            f"create table if not exists {SCHEMA}.totals ("
            " tenant_id text primary key, quantity numeric not null, events bigint not null)"
        )


async def applied_events(pool: asyncpg.Pool) -> int:
    return int(await pool.fetchval(f"select coalesce(sum(events), 0) from {SCHEMA}.totals"))


async def main(args: argparse.Namespace) -> None:
    pool = await asyncpg.create_pool(args.postgres_url, min_size=1, max_size=2)
    assert pool is not None
    inbox = Inbox(SCHEMA, args.group)
    await setup(pool, inbox)
    settings = Settings(kafka_bootstrap=args.kafka_bootstrap)
    event_log = open_event_log(settings, args.postgres_url)
    await event_log.start()

    @asynccontextmanager
    async def transaction() -> AsyncIterator[Totals]:
        async with pool.acquire() as conn:
            async with conn.transaction():
                yield Totals(conn, inbox)
            # Committed, the group's offsets not yet: slow here, so a kill lands in between.
            await asyncio.sleep(args.delay)

    projection = Projection(
        args.group,
        [args.topic],
        {UsageRecorded: on_usage_recorded},
        transaction,
        claim=Totals.claim,
        max_batch=10,
    )
    runner = ProjectionRunner(event_log, AvroCodec(), projection)
    running = asyncio.create_task(runner.run())
    print("started", flush=True)
    while args.until is None or await applied_events(pool) < args.until:
        if running.done():
            running.result()
        await asyncio.sleep(0.1)
    runner.stop()
    await running
    print(f"skipped {Totals.skipped}", flush=True)
    await event_log.close()
    await pool.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--postgres-url", required=True)
    parser.add_argument("--kafka-bootstrap", default=None)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="usage-projection")
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--until", type=int, default=None, help="exit once this many applied")
    asyncio.run(main(parser.parse_args()))

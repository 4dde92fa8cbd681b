"""A real projection process for crash tests: UsageRecorded -> per-tenant totals in Postgres,
applied exactly once through the runtime's Inbox. Run as
`python -m tests.support.usage_projection --postgres-url URL --topic T [--kafka-bootstrap B]`.

It prints how many re-delivered events the inbox skipped, so a test can prove a re-delivery
really happened after a SIGKILL."""

from __future__ import annotations

import argparse
import asyncio
from decimal import Decimal

import asyncpg

from hartonomous.eventlog.factory import open_event_log
from hartonomous.eventlog.port import StoredRecord
from hartonomous.events import AvroCodec, Event
from hartonomous.runtime.consumer import ConsumerLoop
from hartonomous.runtime.inbox import Inbox
from hartonomous.settings import Settings

SCHEMA = "usage_projection"


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
    log = open_event_log(settings, args.postgres_url)
    await log.start()
    skipped = 0

    async def apply(event: Event, record: StoredRecord) -> None:
        nonlocal skipped
        async with pool.acquire() as conn, conn.transaction():
            if not await inbox.claim(conn, record):
                skipped += 1
                return
            await conn.execute(
                f"insert into {SCHEMA}.totals values ($1, $2, 1) on conflict (tenant_id)"
                f" do update set quantity = {SCHEMA}.totals.quantity + excluded.quantity,"
                f" events = {SCHEMA}.totals.events + 1",
                event.payload["tenant_id"],
                Decimal(event.payload["quantity"]),
            )
        await asyncio.sleep(args.delay)  # slow enough that a kill lands mid-batch

    loop = ConsumerLoop(log, AvroCodec(), args.group, [args.topic], apply, max_batch=50)
    runner = asyncio.create_task(loop.run())
    print("started", flush=True)
    while args.until is None or await applied_events(pool) < args.until:
        if runner.done():
            runner.result()
        await asyncio.sleep(0.1)
    loop.stop()
    await runner
    print(f"skipped {skipped}", flush=True)
    await log.close()
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

"""The ledger tables: one row per usage event, keyed by the envelope's event id, so a
re-delivered or re-appended copy of an event is never counted twice.

The same tables live in schema `billing` (the projection the service keeps) and in a scratch
schema that `billing reconcile` fills by replay; both are written by `insert`, and each row
keeps what priced it (rate card version, unit price, multiplier, plan, the log's timestamp),
so a later price change never rewrites a past charge.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import asyncpg

from services.billing.domain import DayTotal
from services.billing.pricing import Charge

Conn = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


class Ledger:
    def __init__(self, schema: str) -> None:
        self.schema = schema

    async def create(self, conn: Conn) -> None:
        s = self.schema
        await conn.execute(
            f"""
            create schema if not exists {s};
            create table if not exists {s}.ledger (
                event_id text primary key,
                tenant_id text not null,
                operation text not null,
                unit text not null,
                quantity numeric not null,
                resource_id text not null,
                used_at timestamptz not null,
                api_key_id text,
                dimensions jsonb not null,
                logged_at timestamptz not null,
                rate_version bigint,
                plan text,
                unit_price numeric not null,
                multiplier numeric not null,
                amount numeric not null);
            create index if not exists ledger_by_tenant on {s}.ledger (tenant_id, used_at);
            create index if not exists ledger_by_time on {s}.ledger (used_at);
            """
        )

    async def insert(self, conn: Conn, charges: Sequence[Charge]) -> set[str]:
        """Add the charges not in the ledger yet; returns the event ids that were added."""
        usages = [c.usage for c in charges]
        rows = await conn.fetch(
            f"""
            insert into {self.schema}.ledger
            select e, t, o, u, q, r, ua, k, d::jsonb, la, v, p, up, m, a
            from unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::numeric[],
                        $6::text[], $7::timestamptz[], $8::text[], $9::text[],
                        $10::timestamptz[], $11::bigint[], $12::text[], $13::numeric[],
                        $14::numeric[], $15::numeric[])
                 as x(e, t, o, u, q, r, ua, k, d, la, v, p, up, m, a)
            on conflict (event_id) do nothing
            returning event_id
            """,
            [u.event_id for u in usages],
            [u.tenant_id for u in usages],
            [u.operation for u in usages],
            [u.unit for u in usages],
            [u.quantity for u in usages],
            [u.resource_id for u in usages],
            [u.used_at for u in usages],
            [u.api_key_id for u in usages],
            [json.dumps(dict(u.dimensions), sort_keys=True) for u in usages],
            [c.logged_at for c in charges],
            [c.rate_version for c in charges],
            [c.plan for c in charges],
            [c.unit_price for c in charges],
            [c.multiplier for c in charges],
            [c.amount for c in charges],
        )
        return {row["event_id"] for row in rows}

    async def day_totals(self, conn: Conn) -> list[DayTotal]:
        rows = await conn.fetch(
            "select tenant_id, (used_at at time zone 'UTC')::date as day, count(*) as events,"
            " sum(quantity) as quantity, sum(amount) as amount"
            f" from {self.schema}.ledger group by 1, 2 order by 1, 2"
        )
        return [DayTotal(**dict(row)) for row in rows]

    async def drop(self, conn: Conn) -> None:
        await conn.execute(f"drop schema if exists {self.schema} cascade")

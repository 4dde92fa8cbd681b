"""Postgres schema `billing`: the ledger (a projection of the `usage` topic), and what admins
put beside it: rate card versions and plan changes (immutable once written), quotas, and
issued invoices (immutable: triggers refuse any UPDATE or DELETE of their rows).

Pricing and rate card changes meet at one row, `billing.config`: a ledger transaction reads it
FOR SHARE before pricing, and a change locks it FOR UPDATE before stamping its `created_at`.
So a version is either visible to a ledger transaction or created after the event it prices
was logged; with `pricing.price` choosing among versions created by the event's log timestamp,
live pricing and a replay agree (see `pricing`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from hartonomous.eventlog.port import Position, StoredRecord
from hartonomous.events import new_event_id
from hartonomous.runtime.inbox import Inbox
from services.billing.domain import (
    USAGE_TOPIC,
    DayTotal,
    Invoice,
    InvoiceLine,
    Period,
    QuotaRule,
    UsageLine,
    build_invoice,
    check_no_overlap,
)
from services.billing.ledger import Conn, Ledger
from services.billing.pricing import (
    Charge,
    Multiplier,
    PlanChange,
    Pricing,
    Rate,
    RateCard,
    RateTable,
    Usage,
    check_new_version,
    price,
)
from services.billing.tunables import LEDGER_GROUP

SCHEMA = "billing"
CONFIG_CHANNEL = "billing_config"
"""NOTIFYed when rates, plans or quotas change, so running services reload their quotas."""

_SETUP_LOCK = 0x4249_4C4C  # advisory lock: replicas starting together create the schema once
_INVOICE_LOCK = 0x494E_5643  # with a tenant's hash: one invoice issued at a time per tenant

_DDL = f"""
create table if not exists {SCHEMA}.config (
    id boolean primary key default true check (id),
    epoch bigint not null);
insert into {SCHEMA}.config values (true, 0) on conflict do nothing;
create table if not exists {SCHEMA}.rate_cards (
    version bigint primary key,
    effective_from timestamptz not null,
    currency text not null,
    created_at timestamptz not null);
create table if not exists {SCHEMA}.rates (
    version bigint not null references {SCHEMA}.rate_cards,
    operation text not null,
    unit text not null,
    unit_price numeric not null,
    primary key (version, operation, unit));
create table if not exists {SCHEMA}.multipliers (
    version bigint not null references {SCHEMA}.rate_cards,
    dimension text not null,
    value text not null,
    factor numeric not null,
    primary key (version, dimension, value));
create table if not exists {SCHEMA}.plans (
    tenant_id text not null,
    plan text not null,
    set_at timestamptz not null,
    primary key (tenant_id, set_at));
create table if not exists {SCHEMA}.quotas (
    tenant_id text not null,
    operation text not null,
    quota_limit numeric not null,
    unit text not null,
    period text not null check (period in ('day', 'month')),
    soft_ratio numeric not null,
    primary key (tenant_id, operation));
create table if not exists {SCHEMA}.invoices (
    invoice_id text primary key,
    tenant_id text not null,
    period_start timestamptz not null,
    period_end timestamptz not null,
    issued_at timestamptz not null,
    currency text not null,
    total numeric not null,
    unique (tenant_id, period_start, period_end));
create table if not exists {SCHEMA}.invoice_lines (
    invoice_id text not null references {SCHEMA}.invoices,
    line_no int not null,
    operation text not null,
    unit text not null,
    quantity numeric not null,
    unit_price numeric not null,
    amount numeric not null,
    primary key (invoice_id, line_no));
create or replace function {SCHEMA}.immutable() returns trigger language plpgsql as $$
begin
  raise exception '%.% is immutable: % refused', tg_table_schema, tg_table_name, tg_op;
end $$;
"""
# Before the kernel's projection runner, the ledger kept its own table of positions; an old data
# dir's is carried into the inbox (last applied = next - 1), so the ledger resumes where it was.
_PROGRESS_TO_INBOX = f"""
do $$ begin
  if to_regclass('{SCHEMA}.progress') is not null then
    insert into {SCHEMA}.inbox
      select '{LEDGER_GROUP}', topic, partition, next_offset - 1 from {SCHEMA}.progress
      on conflict (consumer, topic, partition)
      do update set "offset" = greatest({SCHEMA}.inbox."offset", excluded."offset");
    drop table {SCHEMA}.progress;
  end if;
end $$;
"""

_IMMUTABLE = ("rate_cards", "rates", "multipliers", "plans", "invoices", "invoice_lines")

_CARD_AT = f"""
select version from {SCHEMA}.rate_cards where effective_from <= $1
order by effective_from desc, version desc limit 1
"""

_PERIOD_USAGE = f"""
select tenant_id, operation, unit, date_trunc('day', used_at, 'UTC') as day,
       sum(quantity) as quantity, sum(amount) as amount
from {SCHEMA}.ledger where used_at >= $1 group by 1, 2, 3, 4
"""

_USAGE = f"""
select operation, unit, {{day}} as day, sum(quantity) as quantity, sum(amount) as cost,
       count(*) as events
from {SCHEMA}.ledger
where tenant_id = $1 and ($2::timestamptz is null or used_at >= $2) and used_at < $3
group by 1, 2, 3 order by 3, 1, 2
"""

# One line per operation, unit and the unit price actually charged (base price x multiplier).
_PRICED = f"""
select operation, unit, sum(quantity) as quantity, unit_price * multiplier as unit_price,
       sum(amount) as amount
from {SCHEMA}.ledger where tenant_id = $1 and used_at >= $2 and used_at < $3
group by operation, unit, unit_price * multiplier order by 1, 2, 4
"""


class LedgerTransaction:
    """One transaction of the ledger projection: the usage events handled in it are priced and
    inserted together when it ends, with the inbox positions of their records. `added` then
    holds the charges that were new to the ledger (a re-delivery or a second copy is not)."""

    def __init__(self, store: BillingStore, conn: Conn) -> None:
        self._store = store
        self._conn = conn
        self._pending: list[tuple[Usage, datetime]] = []
        self.added: list[Charge] = []

    async def claim(self, records: Sequence[StoredRecord]) -> set[Position]:
        return await self._store.inbox.claim(self._conn, records)

    def add(self, usage: Usage, logged_at: datetime) -> None:
        """Charge a usage event the log accepted at `logged_at` (which prices it)."""
        self._pending.append((usage, logged_at))

    async def flush(self) -> None:
        if not self._pending:
            return
        # The rate cards and plans as of now; a change waits until this transaction ends.
        epoch = await self._conn.fetchval(f"select epoch from {SCHEMA}.config for share")
        pricing = await self._store.cached_pricing(self._conn, epoch)
        charges = [price(usage, pricing, logged_at) for usage, logged_at in self._pending]
        new = await self._store.ledger.insert(self._conn, charges)
        for charge in charges:
            if charge.usage.event_id in new:  # a copy later in the same batch is not new
                new.discard(charge.usage.event_id)
                self.added.append(charge)


class BillingStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.ledger = Ledger(SCHEMA)
        self.inbox = Inbox(SCHEMA, LEDGER_GROUP)
        self._pricing: tuple[int, Pricing] | None = None

    async def setup(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _SETUP_LOCK)
            await self.ledger.create(conn)
            await self.inbox.setup(conn)
            await conn.execute(_DDL)
            await conn.execute(_PROGRESS_TO_INBOX)
            for table in _IMMUTABLE:
                await conn.execute(
                    f"create or replace trigger immutable before update or delete"
                    f" on {SCHEMA}.{table} for each row execute function {SCHEMA}.immutable()"
                )

    # --- the ledger --------------------------------------------------------------------------

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[LedgerTransaction]:
        async with self.pool.acquire() as conn, conn.transaction():
            ledger = LedgerTransaction(self, conn)
            yield ledger
            await ledger.flush()

    async def cached_pricing(self, conn: Conn, epoch: int) -> Pricing:
        if self._pricing is None or self._pricing[0] != epoch:
            self._pricing = (epoch, await _load_pricing(conn))
        return self._pricing[1]

    async def period_usage(self, since: datetime) -> list[asyncpg.Record]:
        """Quantity and amount per tenant, operation, unit and UTC day from `since` on."""
        return await self.pool.fetch(_PERIOD_USAGE, since)

    async def reconcile_inputs(self) -> tuple[Pricing, dict[int, int], list[DayTotal]]:
        """From one snapshot: the pricing, how far the ledger has got in each partition of the
        usage topic, and the ledger's totals per tenant and day."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            pricing = await _load_pricing(conn)
            progress = await self.inbox.applied(conn, USAGE_TOPIC)
            totals = await self.ledger.day_totals(conn)
        return pricing, progress, totals

    async def usage(
        self, tenant_id: str, start: datetime | None, end: datetime, by_day: bool
    ) -> list[UsageLine]:
        day = "(used_at at time zone 'UTC')::date" if by_day else "null::date"
        rows = await self.pool.fetch(_USAGE.format(day=day), tenant_id, start, end)
        return [UsageLine(**dict(row)) for row in rows]

    # --- rate cards and plans ------------------------------------------------------------------

    async def pricing(self) -> Pricing:
        async with self.pool.acquire() as conn:
            return await _load_pricing(conn)

    async def rate_card_at(self, at: datetime) -> RateCard | None:
        version = await self.pool.fetchval(_CARD_AT, at)
        return None if version is None else _by_version(await self.pricing(), version)

    async def put_rates(self, table: RateTable) -> RateCard:
        async with self.pool.acquire() as conn, conn.transaction():
            await _change_config(conn)
            latest = await conn.fetchval(f"select max(version) from {SCHEMA}.rate_cards")
            invoiced_until = await conn.fetchval(f"select max(period_end) from {SCHEMA}.invoices")
            latest_card = None if latest is None else _by_version(await _load_pricing(conn), latest)
            check_new_version(table, latest_card, invoiced_until)
            stamped = await conn.fetchrow(
                f"insert into {SCHEMA}.rate_cards"
                f" select coalesce(max(version), 0) + 1, $1, $2, clock_timestamp()"
                f" from {SCHEMA}.rate_cards returning version, created_at",
                table.effective_from,
                table.currency,
            )
            assert stamped is not None  # INSERT ... RETURNING always returns the row
            version, created_at = stamped
            await conn.executemany(
                f"insert into {SCHEMA}.rates values ($1, $2, $3, $4)",
                [(version, r.operation, r.unit, r.unit_price) for r in table.rates],
            )
            await conn.executemany(
                f"insert into {SCHEMA}.multipliers values ($1, $2, $3, $4)",
                [(version, m.dimension, m.value, m.factor) for m in table.multipliers],
            )
        return RateCard(
            table.effective_from,
            table.currency,
            table.rates,
            table.multipliers,
            version=version,
            created_at=created_at,
        )

    # --- quotas --------------------------------------------------------------------------------

    async def put_quota(self, rule: QuotaRule, plan: str | None) -> str | None:
        """Upsert the quota and, when given, change the tenant's plan; returns the plan."""
        async with self.pool.acquire() as conn, conn.transaction():
            await _change_config(conn)
            await conn.execute(
                f"insert into {SCHEMA}.quotas values ($1, $2, $3, $4, $5, $6)"
                " on conflict (tenant_id, operation) do update set"
                "  quota_limit = excluded.quota_limit, unit = excluded.unit,"
                "  period = excluded.period, soft_ratio = excluded.soft_ratio",
                rule.tenant_id,
                rule.operation,
                rule.limit,
                rule.unit,
                rule.period.value,
                rule.soft_ratio,
            )
            current = await _plan(conn, rule.tenant_id)
            if plan is not None and plan != current:
                await conn.execute(
                    f"insert into {SCHEMA}.plans values ($1, $2, clock_timestamp())",
                    rule.tenant_id,
                    plan,
                )
                current = plan
        return current

    async def quotas(self) -> list[QuotaRule]:
        rows = await self.pool.fetch(f"select * from {SCHEMA}.quotas")
        return [
            QuotaRule(
                r["tenant_id"],
                r["operation"],
                r["quota_limit"],
                r["unit"],
                Period(r["period"]),
                r["soft_ratio"],
            )
            for r in rows
        ]

    # --- invoices ------------------------------------------------------------------------------

    async def issue_invoice(
        self, tenant_id: str, period: tuple[datetime, datetime], now: datetime, currency: str
    ) -> Invoice:
        """The tenant's invoice for exactly this period: the one issued before, or a new one."""
        start, end = period
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "select pg_advisory_xact_lock($1, hashtext($2))", _INVOICE_LOCK, tenant_id
            )
            issued = await _invoices(conn, tenant_id)
            same = [i for i in issued if (i.period_start, i.period_end) == (start, end)]
            if same:
                return same[0]
            check_no_overlap(start, end, issued)
            priced = [
                InvoiceLine(**dict(r)) for r in await conn.fetch(_PRICED, tenant_id, start, end)
            ]
            invoice = build_invoice(new_event_id(), tenant_id, period, now, currency, priced)
            await conn.execute(
                f"insert into {SCHEMA}.invoices values ($1, $2, $3, $4, $5, $6, $7)",
                invoice.invoice_id,
                tenant_id,
                start,
                end,
                invoice.issued_at,
                currency,
                invoice.total,
            )
            await conn.executemany(
                f"insert into {SCHEMA}.invoice_lines values ($1, $2, $3, $4, $5, $6, $7)",
                [
                    (invoice.invoice_id, n, x.operation, x.unit, x.quantity, x.unit_price, x.amount)
                    for n, x in enumerate(invoice.lines)
                ],
            )
        return invoice

    async def invoices(self, tenant_id: str, invoice_id: str | None = None) -> list[Invoice]:
        """The tenant's invoices, newest period first (or the one with `invoice_id`)."""
        async with self.pool.acquire() as conn:
            return await _invoices(conn, tenant_id, invoice_id)


async def _change_config(conn: Conn) -> None:
    """Inside a change's transaction, before it stamps anything: waits for ledger transactions
    pricing with the old config, and tells running services to reload."""
    await conn.execute(f"update {SCHEMA}.config set epoch = epoch + 1")
    await conn.execute("select pg_notify($1, '')", CONFIG_CHANNEL)


async def _load_pricing(conn: Conn) -> Pricing:
    cards = await conn.fetch(f"select * from {SCHEMA}.rate_cards order by version")
    rates = await conn.fetch(f"select * from {SCHEMA}.rates order by operation, unit")
    factors = await conn.fetch(f"select * from {SCHEMA}.multipliers order by dimension, value")
    plans = await conn.fetch(f"select * from {SCHEMA}.plans order by tenant_id, set_at")
    by_tenant: dict[str, list[PlanChange]] = {}
    for p in plans:
        by_tenant.setdefault(p["tenant_id"], []).append(
            PlanChange(p["tenant_id"], p["plan"], p["set_at"])
        )
    return Pricing(
        cards=tuple(
            RateCard(
                c["effective_from"],
                c["currency"],
                tuple(
                    Rate(r["operation"], r["unit"], r["unit_price"])
                    for r in rates
                    if r["version"] == c["version"]
                ),
                tuple(
                    Multiplier(m["dimension"], m["value"], m["factor"])
                    for m in factors
                    if m["version"] == c["version"]
                ),
                version=c["version"],
                created_at=c["created_at"],
            )
            for c in cards
        ),
        plans={tenant: tuple(changes) for tenant, changes in by_tenant.items()},
    )


def _by_version(pricing: Pricing, version: int) -> RateCard:
    return next(c for c in pricing.cards if c.version == version)


async def _plan(conn: Conn, tenant_id: str) -> str | None:
    plan: str | None = await conn.fetchval(
        f"select plan from {SCHEMA}.plans where tenant_id = $1 order by set_at desc limit 1",
        tenant_id,
    )
    return plan


async def _invoices(conn: Conn, tenant_id: str, invoice_id: str | None = None) -> list[Invoice]:
    heads = await conn.fetch(
        f"select * from {SCHEMA}.invoices where tenant_id = $1"
        " and ($2::text is null or invoice_id = $2) order by period_start desc",
        tenant_id,
        invoice_id,
    )
    lines = await conn.fetch(
        f"select * from {SCHEMA}.invoice_lines where invoice_id = any($1::text[])"
        " order by invoice_id, line_no",
        [h["invoice_id"] for h in heads],
    )
    return [
        Invoice(
            invoice_id=h["invoice_id"],
            tenant_id=tenant_id,
            period_start=h["period_start"],
            period_end=h["period_end"],
            issued_at=h["issued_at"],
            currency=h["currency"],
            lines=tuple(_line(x) for x in lines if x["invoice_id"] == h["invoice_id"]),
            total=h["total"],
        )
        for h in heads
    ]


def _line(row: asyncpg.Record) -> InvoiceLine:
    return InvoiceLine(
        row["operation"], row["unit"], row["quantity"], row["unit_price"], row["amount"]
    )

"""The billing commands (shared by the gRPC API and the CLI) and the ledger's event handler.

Ledger: each UsageRecorded on `usage` becomes one priced row, keyed by the envelope's event id
and inserted with ON CONFLICT DO NOTHING, so a second copy of the same event appended again is
counted once (and a re-delivered record is skipped by the inbox). A batch is priced and
inserted in one transaction: one commit per batch is what keeps up with the log. The quota
book learns of a row only after its transaction committed, and only when the row was new.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

from hartonomous.events import Event
from hartonomous.events.payloads import Payload, UsageRecorded
from hartonomous.runtime.projection import Handler, Projection, RetryPolicy
from hartonomous.tenants import parse_tenant_id
from services.billing.domain import (
    USAGE_TOPIC,
    Invoice,
    NotFound,
    Period,
    QuotaRule,
    UsageSummary,
    check_closed_period,
    parse_name,
    parse_quota,
)
from services.billing.pricing import Charge, RateCard, usage_from_event
from services.billing.quota import QuotaBook
from services.billing.store import BillingStore, LedgerTransaction
from services.billing.tunables import LEDGER_BATCH, LEDGER_GROUP

logger = logging.getLogger(__name__)

LEDGER_RETRY = RetryPolicy(attempts=12, first_backoff=0.2, max_backoff=30.0)
"""Usage must not be dropped for a database hiccup: retried for minutes before dead-lettering."""

# ---------------------------------------------------------------------------------------
# Commands


async def rates_at(store: BillingStore, at: datetime) -> RateCard:
    card = await store.rate_card_at(at)
    if card is None:
        raise NotFound(f"no rate card is in effect at {at.isoformat()}")
    return card


async def put_quota(
    store: BillingStore,
    *,
    tenant_id: str,
    operation: str,
    limit: str,
    unit: str,
    period: Period,
    soft_ratio: str,
    plan: str,
) -> tuple[QuotaRule, str | None]:
    """Returns the quota and the tenant's plan (`plan` empty: unchanged)."""
    currency = (await store.pricing()).currency
    rule = parse_quota(
        tenant_id=tenant_id,
        operation=operation,
        limit=limit,
        unit=unit,
        period=period,
        soft_ratio=soft_ratio,
        currency=currency,
    )
    new_plan = parse_name(plan, "plan") if plan.strip() else None
    return rule, await store.put_quota(rule, new_plan)


async def usage_summary(
    store: BillingStore, tenant_id: str, start: datetime | None, end: datetime, by_day: bool
) -> UsageSummary:
    tenant = parse_tenant_id(tenant_id)
    lines = await store.usage(tenant, start, end, by_day)
    return UsageSummary(tenant, (await store.pricing()).currency, tuple(lines))


async def issue_invoice(
    store: BillingStore, tenant_id: str, start: datetime, end: datetime, now: datetime
) -> Invoice:
    tenant = parse_tenant_id(tenant_id)
    check_closed_period(start, end, now)
    currency = (await store.pricing()).currency
    return await store.issue_invoice(tenant, (start, end), now, currency)


async def invoice(store: BillingStore, tenant_id: str, invoice_id: str) -> Invoice:
    found = await store.invoices(parse_tenant_id(tenant_id), invoice_id.strip())
    if not found:
        # The same answer for another tenant's invoice: ids reveal nothing across tenants.
        raise NotFound(f"tenant {tenant_id} has no invoice {invoice_id}")
    return found[0]


# ---------------------------------------------------------------------------------------
# The ledger


async def on_usage_recorded(ledger: LedgerTransaction, event: Event[UsageRecorded]) -> None:
    """Priced by the log's timestamp, so a replay picks the same rate card (pricing.py)."""
    ledger.add(usage_from_event(event.envelope.event_id, event.payload), event.logged.timestamp)


HANDLERS: Mapping[type[Payload], Handler[LedgerTransaction]] = {
    UsageRecorded: on_usage_recorded,
}


def ledger_projection(store: BillingStore, book: QuotaBook) -> Projection[LedgerTransaction]:
    """The ledger, and the quota book counting each new row once its transaction committed."""
    counter = UsageCounter(book)

    @asynccontextmanager
    async def transaction() -> AsyncIterator[LedgerTransaction]:
        async with store.transaction() as ledger:
            yield ledger
        counter.count(ledger.added)

    return Projection(
        LEDGER_GROUP,
        [USAGE_TOPIC],
        HANDLERS,
        transaction,
        claim=LedgerTransaction.claim,
        retry=LEDGER_RETRY,
        max_batch=LEDGER_BATCH,
    )


class UsageCounter:
    """Counts new ledger rows in the quota book, and warns once per operation and unit that
    has no rate."""

    def __init__(self, book: QuotaBook) -> None:
        self._book = book
        self._unrated: set[tuple[str, str]] = set()

    def count(self, charges: Sequence[Charge]) -> None:
        for charge in charges:
            usage = charge.usage
            self._book.record(
                usage.tenant_id,
                usage.operation,
                usage.unit,
                usage.quantity,
                charge.amount,
                usage.used_at,
            )
            if not charge.rated and (usage.operation, usage.unit) not in self._unrated:
                self._unrated.add((usage.operation, usage.unit))
                logger.warning(
                    "usage with no rate recorded at price 0",
                    extra={
                        "operation": usage.operation,
                        "unit": usage.unit,
                        "rate_version": charge.rate_version,
                        "event_id": usage.event_id,
                    },
                )

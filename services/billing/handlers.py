"""The billing commands (shared by the gRPC API and the CLI) and the ledger's event handler.

Ledger: each UsageRecorded on `usage` becomes one priced row, keyed by the envelope's event id
and inserted with ON CONFLICT DO NOTHING, so a re-delivered record, or a second copy of the
same event appended again, is counted once. The quota book learns of a row only after its
transaction committed, and only when the row was new.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from hartonomous.eventlog.port import EventLog, Position, StoredRecord
from hartonomous.events import AvroCodec, Event, EventDecodeError, decode_event
from hartonomous.runtime.consumer import ConsumerLoop, RetryPolicy
from services.billing.domain import (
    USAGE_EVENT,
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
from services.billing.pricing import Charge, RateCard, Usage, price, usage_from_event
from services.billing.quota import QuotaBook
from services.billing.store import BillingStore

log = logging.getLogger(__name__)

GROUP = "billing-ledger"
LEDGER_BATCH = 1000
"""Records per poll, applied in one transaction (one commit per batch is what keeps up)."""

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
    tenant = parse_name(tenant_id, "tenant_id")
    lines = await store.usage(tenant, start, end, by_day)
    return UsageSummary(tenant, (await store.pricing()).currency, tuple(lines))


async def issue_invoice(
    store: BillingStore, tenant_id: str, start: datetime, end: datetime, now: datetime
) -> Invoice:
    tenant = parse_name(tenant_id, "tenant_id")
    check_closed_period(start, end, now)
    currency = (await store.pricing()).currency
    return await store.issue_invoice(tenant, (start, end), now, currency)


async def invoice(store: BillingStore, tenant_id: str, invoice_id: str) -> Invoice:
    found = await store.invoices(parse_name(tenant_id, "tenant_id"), invoice_id.strip())
    if not found:
        # The same answer for another tenant's invoice: ids reveal nothing across tenants.
        raise NotFound(f"tenant {tenant_id} has no invoice {invoice_id}")
    return found[0]


# ---------------------------------------------------------------------------------------
# The ledger


class LedgerHandler:
    """Applies usage events to the ledger, and counts the new ones in the quota book.

    `apply_batch` prices and inserts a whole polled batch in one transaction (one commit: the
    ledger keeps up with the log). The handler itself (`__call__`, what the kernel's consumer
    loop calls per event) skips what the batch applied, and applies the rest one by one when
    the batch failed, with the loop's retries and dead letters."""

    def __init__(self, store: BillingStore, book: QuotaBook, codec: AvroCodec) -> None:
        self._store = store
        self._book = book
        self._codec = codec
        self._applied: set[Position] = set()
        self._unrated: set[tuple[str, str]] = set()  # warned once per operation and unit

    async def apply_batch(self, records: Sequence[StoredRecord]) -> None:
        self._applied = set()
        usable: list[tuple[Usage, StoredRecord]] = []
        for record in records:
            try:
                event = decode_event(self._codec, record)
            except EventDecodeError:
                continue  # the consumer loop dead-letters it
            if event.event_type == USAGE_EVENT:
                usable.append((usage_from_event(event.envelope.event_id, event.payload), record))
        try:
            await self._apply(usable, records)
        except Exception:
            log.warning("ledger batch failed; applying its events one by one", exc_info=True)
            return
        self._applied = {record.position for record in records}

    async def __call__(self, event: Event, record: StoredRecord) -> None:
        if record.position in self._applied or event.event_type != USAGE_EVENT:
            return
        await self._apply(
            [(usage_from_event(event.envelope.event_id, event.payload), record)], [record]
        )

    async def _apply(
        self, usable: Sequence[tuple[Usage, StoredRecord]], records: Sequence[StoredRecord]
    ) -> None:
        async with self._store.transaction() as tx:
            pricing = await tx.pricing()
            charges = [price(usage, pricing, record.timestamp) for usage, record in usable]
            added = await tx.record(charges, records)
        for charge in charges:
            if charge.usage.event_id in added:  # a copy later in the same batch is not new
                added.discard(charge.usage.event_id)
                self._count(charge)

    def _count(self, charge: Charge) -> None:
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
            log.warning(
                "usage with no rate recorded at price 0",
                extra={
                    "operation": usage.operation,
                    "unit": usage.unit,
                    "rate_version": charge.rate_version,
                    "event_id": usage.event_id,
                },
            )


class LedgerLoop(ConsumerLoop):
    """The kernel's consumer loop, applying each batch in one transaction first."""

    def __init__(
        self, log_: EventLog, codec: AvroCodec, handler: LedgerHandler, retry: RetryPolicy
    ) -> None:
        super().__init__(
            log_, codec, GROUP, [USAGE_TOPIC], handler, max_batch=LEDGER_BATCH, retry=retry
        )
        self.handler = handler

    async def handle_batch(self, records: Sequence[StoredRecord]) -> None:
        await self.handler.apply_batch(records)
        await super().handle_batch(records)

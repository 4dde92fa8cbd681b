"""`billing reconcile`: the live ledger against the `usage` topic priced again.

The topic is replayed into a scratch copy of the ledger tables with the same pricing and the
same insert as the live consumer, then both are totalled per tenant and UTC day (events,
quantity, amount: exactly, which is finer than the cent) and compared. The comparison stops
where the live ledger has got to in each partition, read in one snapshot with the pricing and
the live totals, so a running platform's newest events are not reported as differences.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from hartonomous.eventlog.port import EventLog, UnknownTopicError
from hartonomous.events import AvroCodec, EventDecodeError, decode_event
from hartonomous.events.payloads import UsageRecorded
from services.billing.domain import EXACT, USAGE_TOPIC, ZERO, DayTotal
from services.billing.ledger import Conn, Ledger
from services.billing.pricing import Charge, Pricing, price, usage_from_event
from services.billing.store import BillingStore

SCRATCH_PREFIX = "billing_reconcile_"
BATCH = 1000


@dataclass(frozen=True)
class Difference:
    tenant_id: str
    day: date
    live: DayTotal | None
    replayed: DayTotal | None

    @property
    def live_amount(self) -> Decimal:
        return ZERO if self.live is None else self.live.amount

    @property
    def replayed_amount(self) -> Decimal:
        return ZERO if self.replayed is None else self.replayed.amount

    @property
    def amount_diff(self) -> Decimal:
        return EXACT.subtract(self.live_amount, self.replayed_amount)


@dataclass(frozen=True)
class Report:
    compared: int  # tenant-days
    replayed_events: int  # usage records, copies of one event included
    undecodable: int  # records the live consumer dead-letters too
    pending: int  # records the live ledger has not reached yet: left out
    differences: tuple[Difference, ...]


def compare(live: Sequence[DayTotal], replayed: Sequence[DayTotal]) -> list[Difference]:
    by_day = {(t.tenant_id, t.day): t for t in live}
    again = {(t.tenant_id, t.day): t for t in replayed}
    return [
        Difference(tenant, day, by_day.get((tenant, day)), again.get((tenant, day)))
        for tenant, day in sorted(by_day.keys() | again.keys())
        if by_day.get((tenant, day)) != again.get((tenant, day))
    ]


async def reconcile(store: BillingStore, event_log: EventLog, codec: AvroCodec) -> Report:
    pricing, progress, live = await store.reconcile_inputs()
    scratch = Ledger(SCRATCH_PREFIX + secrets.token_hex(6))
    async with store.pool.acquire() as conn:
        await scratch.create(conn)
        try:
            counts = await _replay(event_log, codec, pricing, progress, scratch, conn)
            replayed = await scratch.day_totals(conn)
        finally:
            await scratch.drop(conn)
    compared = len({(t.tenant_id, t.day) for t in (*live, *replayed)})
    return Report(compared, *counts, differences=tuple(compare(live, replayed)))


async def _replay(
    event_log: EventLog,
    codec: AvroCodec,
    pricing: Pricing,
    progress: dict[int, int],
    scratch: Ledger,
    conn: Conn,
) -> tuple[int, int, int]:
    """Price the topic's usage events into `scratch`, up to `progress`; returns the counts of
    usage records replayed, undecodable records and records beyond `progress`."""
    replayed = undecodable = pending = 0
    batch: list[Charge] = []
    try:
        async for record in event_log.replay(USAGE_TOPIC, from_offset=0):
            if record.offset >= progress.get(record.partition, 0):
                pending += 1
                continue
            try:
                event = decode_event(codec, record)
            except EventDecodeError:
                undecodable += 1
                continue
            if not isinstance(event.payload, UsageRecorded):
                continue
            usage = usage_from_event(event.envelope.event_id, event.payload)
            batch.append(price(usage, pricing, record.timestamp))
            replayed += 1
            if len(batch) >= BATCH:
                await scratch.insert(conn, batch)
                batch.clear()
    except UnknownTopicError:
        pass  # never provisioned: no usage was ever recorded
    await scratch.insert(conn, batch)
    return replayed, undecodable, pending

"""Storage metering: every closed period, each tenant is billed for what it holds.

A tenant holds the atoms it references (its uploads and its dedup hits, each in full: every
holder pays for what it holds, whoever stored the bytes first); chunk blobs are copies the
platform derives from text and are not billed. A period's bytes are those referenced before
its end, so a reference made during a period counts for all of it (references are never
dropped). Per tenant, StorageMeasured (on `atoms`) and the UsageRecorded it caused (on
`usage`, in byte-hours) are appended in one atomic write.

Both events' ids are functions of the tenant and the period, so a period measured twice (a
crash before the watermark moved, two replicas measuring at once) appends copies that billing
counts once. Periods are measured `settle` after they close, once the catalog holds the
references made just before the end (the ingest request applies its own at once; the catalog
consumer, the rest); one the catalog has not applied by then counts from the next period on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from hartonomous.events import derived_event_id
from hartonomous.runtime.publisher import Publisher
from services.ingest.domain import storage
from services.ingest.domain.storage import Holding
from services.ingest.store import Catalog

logger = logging.getLogger(__name__)

SETTLE = timedelta(minutes=5)
"""How long after a period closes it is measured."""

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class StorageMeter:
    def __init__(
        self,
        catalog: Catalog,
        publisher: Publisher,
        every: timedelta = storage.STORAGE_PERIOD,
        settle: timedelta = SETTLE,
        clock: Clock = utc_now,
    ) -> None:
        storage.check_storage_period(every)
        self._catalog = catalog
        self._publisher = publisher
        self._every = every
        self._settle = settle
        self._clock = clock

    async def run(self) -> None:
        """Measure what is due, then again after each period closes, until cancelled."""
        while True:
            try:
                await self.catch_up()
            except Exception:
                logger.exception("storage metering failed; retrying next period")
            closes = storage.period_end(self._clock() - self._settle, self._every)
            await asyncio.sleep((closes + self._settle - self._clock()).total_seconds())

    async def catch_up(self) -> list[tuple[datetime, datetime]]:
        """Measure every period closed (and settled) since metering last stopped."""
        until = await self._catalog.metered_until()
        periods = storage.storage_periods(until, self._clock() - self._settle, self._every)
        for start, end in periods:
            await self.measure(start, end)
            await self._catalog.storage_metered(end)
        return periods

    async def measure(self, start: datetime, end: datetime) -> list[Holding]:
        """Append each tenant's measurement of [start, end); returns what was billed."""
        holdings = await self._catalog.holdings(end)
        for holding in holdings:
            await self._publish(holding, start, end)
        logger.info(
            "storage measured",
            extra={"period_start": start.isoformat(), "tenants": len(holdings)},
        )
        return holdings

    async def _publish(self, holding: Holding, start: datetime, end: datetime) -> None:
        event_id = storage.storage_event_id(holding.tenant_id, start, end)
        measured = self._publisher.new(
            storage.storage_payload(holding, start, end),
            tenant_id=holding.tenant_id,
            event_id=event_id,
        )
        usage = self._publisher.caused(
            measured,
            storage.storage_usage_payload(holding, start, end),
            event_id=derived_event_id(event_id, "UsageRecorded"),
        )
        await self._publisher.publish(measured, usage)

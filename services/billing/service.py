"""Wiring: the billing pool and store, the quota book (loaded from the ledger, then kept
current by the ledger projection), and a listener that reloads quotas when the CLI or another
replica changes them."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

import asyncpg

from hartonomous.postgres import create_pool
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.service import Service, ServiceContext, Wiring, in_background
from hartonomous.v1 import billing_pb2, billing_pb2_grpc
from services.billing.api import BillingApi
from services.billing.domain import Period, period_bounds
from services.billing.handlers import ledger_projection
from services.billing.quota import RESERVATION_TTL, Clock, QuotaBook, utc_now
from services.billing.store import CONFIG_CHANNEL, BillingStore

logger = logging.getLogger(__name__)

GRPC_SERVICE = billing_pb2.DESCRIPTOR.services_by_name["Billing"].full_name


class BillingService(Service):
    name = "billing"

    def __init__(
        self,
        *,
        clock: Clock = utc_now,
        reservation_ttl: float = RESERVATION_TTL,
        quota_refresh: float = 30.0,
    ) -> None:
        """`quota_refresh`: seconds between quota reloads when no change notification came
        (a notification reloads at once)."""
        self._clock = clock
        self._reservation_ttl = reservation_ttl
        self._quota_refresh = quota_refresh
        self.store: BillingStore | None = None
        self.book: QuotaBook | None = None

    async def wire(self, ctx: ServiceContext, resources: AsyncExitStack) -> Wiring:
        pool = await create_pool(ctx.postgres_url)
        resources.push_async_callback(pool.close)
        store = self.store = BillingStore(pool)
        await store.setup()
        book = self.book = QuotaBook(self._clock, reservation_ttl=self._reservation_ttl)
        changed = asyncio.Event()
        listener = await asyncpg.connect(ctx.postgres_url)
        resources.push_async_callback(listener.close)
        await listener.add_listener(CONFIG_CHANNEL, lambda *_: changed.set())
        await self._load(store, book)  # after listening: no change slips in between
        in_background(resources, self._refresh(store, book, changed), "billing-quotas")
        api = BillingApi(store, book, self._clock)
        return Wiring(
            consumers=[ctx.runner(ledger_projection(store, book))],
            grpc=[
                GrpcRegistration(api, billing_pb2_grpc.add_BillingServicer_to_server, GRPC_SERVICE)
            ],
        )

    async def _load(self, store: BillingStore, book: QuotaBook) -> None:
        """Quotas, and the ledger's usage of the current day and month, into the book."""
        book.set_rules(await store.quotas())
        month_start = period_bounds(self._clock(), Period.MONTH)[0]
        for row in await store.period_usage(month_start):
            book.record(
                row["tenant_id"],
                row["operation"],
                row["unit"],
                row["quantity"],
                row["amount"],
                row["day"],
            )

    async def _refresh(self, store: BillingStore, book: QuotaBook, changed: asyncio.Event) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), self._quota_refresh)
            changed.clear()
            try:
                book.set_rules(await store.quotas())
            except Exception:
                logger.exception("reloading quotas failed; retrying")


service = BillingService()

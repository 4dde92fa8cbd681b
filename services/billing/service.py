"""Wiring: the billing pool and store, the quota book (loaded from the ledger, then kept
current by the ledger consumer), and a listener that reloads quotas when the CLI or another
replica changes them."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg

from hartonomous.postgres import create_pool
from hartonomous.runtime.consumer import RetryPolicy
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.service import Service, ServiceContext, Wiring
from hartonomous.v1 import billing_pb2, billing_pb2_grpc
from services.billing.api import BillingApi
from services.billing.domain import Period, period_bounds
from services.billing.handlers import LedgerHandler, LedgerLoop
from services.billing.quota import RESERVATION_TTL, Clock, QuotaBook, utc_now
from services.billing.store import CONFIG_CHANNEL, BillingStore

log = logging.getLogger(__name__)

GRPC_SERVICE = billing_pb2.DESCRIPTOR.services_by_name["Billing"].full_name
# Usage must not be dropped for a database hiccup: retry for minutes before dead-lettering.
LEDGER_RETRY = RetryPolicy(attempts=12, first_backoff=0.2, max_backoff=30.0)


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
        self._pool: asyncpg.Pool | None = None
        self._listener: asyncpg.Connection | None = None
        self._refresher: asyncio.Task[None] | None = None
        self.store: BillingStore | None = None
        self.book: QuotaBook | None = None

    async def start(self, ctx: ServiceContext) -> Wiring:
        self._pool = await create_pool(ctx.postgres_url)
        store = self.store = BillingStore(self._pool)
        await store.setup()
        book = self.book = QuotaBook(self._clock, reservation_ttl=self._reservation_ttl)
        changed = asyncio.Event()
        self._listener = await asyncpg.connect(ctx.postgres_url)
        await self._listener.add_listener(CONFIG_CHANNEL, lambda *_: changed.set())
        await self._load(store, book)  # after listening: no change slips in between
        self._refresher = asyncio.create_task(
            self._refresh(store, book, changed), name="billing-quotas"
        )
        handler = LedgerHandler(store, book, ctx.codec)
        ledger = LedgerLoop(ctx.log, ctx.codec, handler, LEDGER_RETRY)
        api = BillingApi(store, book, self._clock)
        registration = GrpcRegistration(
            api, billing_pb2_grpc.add_BillingServicer_to_server, GRPC_SERVICE
        )
        return Wiring(consumers=[ledger], grpc=[registration])

    async def stop(self) -> None:
        if self._refresher is not None:
            self._refresher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._refresher
            self._refresher = None
        if self._listener is not None:
            await self._listener.close()
            self._listener = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self.store = self.book = None

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
                log.exception("reloading quotas failed; retrying")

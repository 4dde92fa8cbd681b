"""The hartonomous.v1.Billing gRPC servicer: translates messages and errors, nothing more.
Money and quantities cross the wire as decimal strings, never floats."""

from __future__ import annotations

from typing import Any, TypeAlias

import grpc

from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.tenants import parse_tenant_id
from hartonomous.v1 import billing_pb2 as pb
from services.billing import domain, handlers, messages
from services.billing.domain import (
    ZERO,
    Period,
    non_negative,
    parse_decimal,
    parse_name,
)
from services.billing.pricing import parse_rate_table
from services.billing.quota import Clock, QuotaBook
from services.billing.store import BillingStore

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

_ERRORS = GrpcErrors(
    "billing",
    {
        domain.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        domain.NotFound: grpc.StatusCode.NOT_FOUND,
        domain.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    },
)


class BillingApi:
    def __init__(self, store: BillingStore, book: QuotaBook, clock: Clock) -> None:
        self._store = store
        self._book = book
        self._clock = clock

    async def GetUsage(self, request: pb.UsageRequest, context: Context) -> pb.UsageReply:
        async with _ERRORS.scope(context, "GetUsage"):
            start = messages.to_time(request, "from") if request.HasField("from") else None
            end = messages.to_time(request, "to") if request.HasField("to") else self._clock()
            by_day = request.group_by == pb.USAGE_GROUPING_DAY
            summary = await handlers.usage_summary(
                self._store, request.tenant_id, start, end, by_day
            )
            return messages.usage_reply(summary)

    async def CheckQuota(self, request: pb.QuotaCheckRequest, context: Context) -> pb.QuotaDecision:
        async with _ERRORS.scope(context, "CheckQuota"):
            tenant = parse_tenant_id(request.tenant_id)
            operation = parse_name(request.operation, "operation")
            quantity = (
                non_negative(parse_decimal(request.quantity, "quantity"), "quantity")
                if request.quantity.strip()
                else ZERO
            )
            return messages.decision(self._book.check(tenant, operation, quantity))

    async def ListInvoices(
        self, request: pb.ListInvoicesRequest, context: Context
    ) -> pb.ListInvoicesReply:
        async with _ERRORS.scope(context, "ListInvoices"):
            found = await self._store.invoices(parse_tenant_id(request.tenant_id))
            return pb.ListInvoicesReply(invoices=[messages.invoice(i) for i in found])

    async def GetInvoice(self, request: pb.GetInvoiceRequest, context: Context) -> pb.Invoice:
        async with _ERRORS.scope(context, "GetInvoice"):
            return messages.invoice(
                await handlers.invoice(self._store, request.tenant_id, request.invoice_id)
            )

    async def IssueInvoice(self, request: pb.IssueInvoiceRequest, context: Context) -> pb.Invoice:
        async with _ERRORS.scope(context, "IssueInvoice"):
            if not (request.HasField("period_start") and request.HasField("period_end")):
                raise domain.InvalidArgument("period_start and period_end are required")
            start, end = (
                messages.to_time(request, "period_start"),
                messages.to_time(request, "period_end"),
            )
            issued = await handlers.issue_invoice(
                self._store, request.tenant_id, start, end, self._clock()
            )
            return messages.invoice(issued)

    async def PutRates(self, request: pb.PutRatesRequest, context: Context) -> pb.RateCard:
        async with _ERRORS.scope(context, "PutRates"):
            table = parse_rate_table(
                messages.to_time(request, "effective_from")
                if request.HasField("effective_from")
                else self._clock(),
                request.currency,
                [(r.operation, r.unit, r.unit_price) for r in request.rates],
                [(m.dimension, m.value, m.factor) for m in request.multipliers],
            )
            return messages.rate_card(await self._store.put_rates(table))

    async def GetRates(self, request: pb.GetRatesRequest, context: Context) -> pb.RateCard:
        async with _ERRORS.scope(context, "GetRates"):
            at = messages.to_time(request, "at") if request.HasField("at") else self._clock()
            return messages.rate_card(await handlers.rates_at(self._store, at))

    async def PutQuota(self, request: pb.PutQuotaRequest, context: Context) -> pb.Quota:
        async with _ERRORS.scope(context, "PutQuota"):
            rule, plan = await handlers.put_quota(
                self._store,
                tenant_id=request.tenant_id,
                operation=request.operation,
                limit=request.limit,
                unit=request.unit,
                period=messages.PERIODS.get(request.period, Period.MONTH),
                soft_ratio=request.soft_limit_ratio,
                plan=request.plan,
            )
            self._book.put_rule(rule)  # read-your-writes: the next check knows it
            return messages.quota(rule, plan)

    async def ListQuotas(
        self, request: pb.ListQuotasRequest, context: Context
    ) -> pb.ListQuotasReply:
        async with _ERRORS.scope(context, "ListQuotas"):
            standing = self._book.standing(parse_tenant_id(request.tenant_id))
            return pb.ListQuotasReply(quotas=[messages.standing(a) for a in standing])

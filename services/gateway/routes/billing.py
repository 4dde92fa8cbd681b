"""The caller's usage and quotas (an admin's: any tenant's) and invoices, from the billing
service. Money and quantities are decimal strings ("12.500000000"), never floats."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal as DecimalNumber
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from hartonomous.v1 import billing_pb2
from services.gateway import timestamps
from services.gateway.auth import Principal
from services.gateway.clients import GET_INVOICE, GET_USAGE, LIST_INVOICES, LIST_QUOTAS
from services.gateway.deps import GatewayDep, Reader
from services.gateway.keys import Role
from services.gateway.problems import ProblemError, documented
from services.gateway.routes.admin import PERIOD_NAMES
from services.gateway.routes.tenants import find_tenant

router = APIRouter(prefix="/v1", tags=["billing"])

GROUPINGS = {
    "operation": billing_pb2.USAGE_GROUPING_OPERATION,
    "day": billing_pb2.USAGE_GROUPING_DAY,
}


class UsageLine(BaseModel):
    operation: str
    unit: str
    day: str | None = Field(description="YYYY-MM-DD when grouped by day")
    quantity: str
    cost: str
    events: int


class Usage(BaseModel):
    tenant_id: str
    currency: str
    lines: list[UsageLine]
    total_cost: str


class InvoiceLine(BaseModel):
    operation: str
    unit: str
    quantity: str
    unit_price: str
    amount: str


class Invoice(BaseModel):
    invoice_id: str
    tenant_id: str
    period_start: datetime | None
    period_end: datetime | None
    issued_at: datetime | None
    currency: str
    lines: list[InvoiceLine]
    total: str


class InvoiceList(BaseModel):
    invoices: list[Invoice]


class QuotaStanding(BaseModel):
    operation: str = Field(description='An operation, or "*" for money')
    unit: str
    period: Literal["day", "month"]
    limit: str
    used: str = Field(description="This period so far, requests in flight included")
    left: str = Field(description="What the period still allows (never below 0)")
    period_end: datetime | None
    soft_limit_reached: bool


OtherTenant = Annotated[
    str | None,
    Query(min_length=1, max_length=64, description="Admins: another tenant, by id or name"),
]


@router.get(
    "/usage", summary="Your usage and its cost", responses=documented(401, 403, 404, 422, 429)
)
async def usage(
    gw: GatewayDep,
    principal: Reader,
    start: Annotated[
        datetime | None, Query(alias="from", description="ISO 8601; unset: the beginning")
    ] = None,
    end: Annotated[
        datetime | None, Query(alias="to", description="ISO 8601, exclusive; unset: now")
    ] = None,
    group_by: Annotated[Literal["operation", "day"], Query()] = "operation",
    tenant: OtherTenant = None,
) -> Usage:
    tenant_id = await _tenant_id(gw, principal, tenant)
    request = billing_pb2.UsageRequest(
        tenant_id=tenant_id,
        group_by=GROUPINGS[group_by],
        **{"from": timestamps.to_proto(start), "to": timestamps.to_proto(end)},
    )
    reply: billing_pb2.UsageReply = await gw.peers.unary(GET_USAGE, request)
    return Usage(
        tenant_id=reply.tenant_id or tenant_id,
        currency=reply.currency,
        lines=[
            UsageLine(
                operation=line.operation,
                unit=line.unit,
                day=line.day or None,
                quantity=line.quantity,
                cost=line.cost,
                events=line.events,
            )
            for line in reply.lines
        ],
        total_cost=reply.total_cost,
    )


@router.get(
    "/quotas",
    summary="Your quotas and how much of each is left this period",
    responses=documented(401, 403, 404, 422, 429),
)
async def quotas(
    gw: GatewayDep, principal: Reader, tenant: OtherTenant = None
) -> list[QuotaStanding]:
    request = billing_pb2.ListQuotasRequest(tenant_id=await _tenant_id(gw, principal, tenant))
    reply: billing_pb2.ListQuotasReply = await gw.peers.unary(LIST_QUOTAS, request)
    return [
        QuotaStanding(
            operation=q.quota.operation,
            unit=q.quota.unit,
            period=PERIOD_NAMES.get(q.quota.period, "month"),
            limit=q.quota.limit,
            used=q.used,
            left=str(max(DecimalNumber(q.quota.limit) - DecimalNumber(q.used), DecimalNumber(0))),
            period_end=timestamps.from_proto(q, "period_end"),
            soft_limit_reached=q.soft_limit_reached,
        )
        for q in reply.quotas
    ]


async def _tenant_id(gw: GatewayDep, principal: Principal, tenant: str | None) -> str:
    """The caller's tenant, or (admins only) the one asked for."""
    if tenant is None or tenant == principal.tenant_id:
        return principal.tenant_id
    if not principal.role.allows(Role.ADMIN):
        raise ProblemError(403, "only an admin key sees another tenant's billing", kind="forbidden")
    return (await find_tenant(gw, tenant)).tenant_id


@router.get("/invoices", summary="Your invoices", responses=documented(401, 429))
async def list_invoices(gw: GatewayDep, principal: Reader) -> InvoiceList:
    request = billing_pb2.ListInvoicesRequest(tenant_id=principal.tenant_id)
    reply: billing_pb2.ListInvoicesReply = await gw.peers.unary(LIST_INVOICES, request)
    return InvoiceList(invoices=[invoice(i) for i in reply.invoices])


@router.get(
    "/invoices/{invoice_id}", summary="One of your invoices", responses=documented(401, 404, 429)
)
async def get_invoice(
    invoice_id: Annotated[str, Path(min_length=1, max_length=128)],
    gw: GatewayDep,
    principal: Reader,
) -> Invoice:
    request = billing_pb2.GetInvoiceRequest(tenant_id=principal.tenant_id, invoice_id=invoice_id)
    return invoice(await gw.peers.unary(GET_INVOICE, request))


def invoice(message: billing_pb2.Invoice) -> Invoice:
    return Invoice(
        invoice_id=message.invoice_id,
        tenant_id=message.tenant_id,
        period_start=timestamps.from_proto(message, "period_start"),
        period_end=timestamps.from_proto(message, "period_end"),
        issued_at=timestamps.from_proto(message, "issued_at"),
        currency=message.currency,
        lines=[
            InvoiceLine(
                operation=line.operation,
                unit=line.unit,
                quantity=line.quantity,
                unit_price=line.unit_price,
                amount=line.amount,
            )
            for line in message.lines
        ],
        total=message.total,
    )

"""Admin: rate cards (platform-wide) and tenant quotas, forwarded to billing; a tenant's
settings, kept by the gateway; erasing a tenant."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from hartonomous.v1 import billing_pb2, ingest_pb2
from services.gateway import timestamps
from services.gateway.clients import ERASE_TENANT, PUT_QUOTA, PUT_RATES
from services.gateway.deps import Admin, GatewayDep
from services.gateway.problems import documented
from services.gateway.routes.tenants import TenantRef, find_tenant
from services.gateway.store import Tenant

router = APIRouter(prefix="/v1/admin", tags=["admin"])

Decimal = Annotated[
    str,
    Field(
        pattern=r"^[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$",
        examples=["0.0001"],
        description="A non-negative decimal, as a string",
    ),
]
PERIODS = {"day": billing_pb2.QUOTA_PERIOD_DAY, "month": billing_pb2.QUOTA_PERIOD_MONTH}
PERIOD_NAMES: dict[int, Literal["day", "month"]] = {
    billing_pb2.QUOTA_PERIOD_DAY: "day",
    billing_pb2.QUOTA_PERIOD_MONTH: "month",
    billing_pb2.QUOTA_PERIOD_UNSPECIFIED: "month",
}


class Rate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: str = Field(min_length=1, examples=["embed"])
    unit: str = Field(min_length=1, examples=["tokens"])
    unit_price: Decimal


class Multiplier(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dimension: str = Field(min_length=1, description="plan, model, or a usage dimension")
    value: str = Field(min_length=1)
    factor: Decimal


class RatesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effective_from: datetime | None = Field(None, description="Unset: now")
    currency: str = Field(pattern=r"^[A-Z]{3}$", examples=["USD"])
    rates: list[Rate] = Field(min_length=1)
    multipliers: list[Multiplier] = Field(default_factory=list)


class RateCard(BaseModel):
    version: int
    effective_from: datetime | None
    currency: str
    rates: list[Rate]
    multipliers: list[Multiplier]


class QuotaUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    operation: str = Field(min_length=1, description='An operation, or "*" for money')
    limit: Decimal
    unit: str = Field(min_length=1, description="The operation's unit, or the currency")
    period: Literal["day", "month"] = "month"
    soft_limit_ratio: Decimal | None = Field(None, description="e.g. 0.8: warn from 80%")
    plan: str | None = Field(None, description="The tenant's plan, for plan multipliers")


class Quota(BaseModel):
    tenant_id: str
    operation: str
    limit: str
    unit: str
    period: Literal["day", "month"]
    soft_limit_ratio: str | None
    plan: str | None


@router.put(
    "/rates", summary="Publish a new rate card version", responses=documented(401, 403, 422, 429)
)
async def put_rates(body: RatesUpdate, gw: GatewayDep, _: Admin) -> RateCard:
    request = billing_pb2.PutRatesRequest(
        effective_from=timestamps.to_proto(body.effective_from),
        currency=body.currency,
        rates=[billing_pb2.Rate(**r.model_dump()) for r in body.rates],
        multipliers=[billing_pb2.Multiplier(**m.model_dump()) for m in body.multipliers],
    )
    card: billing_pb2.RateCard = await gw.peers.unary(PUT_RATES, request)
    return RateCard(
        version=card.version,
        effective_from=timestamps.from_proto(card, "effective_from"),
        currency=card.currency,
        rates=[
            Rate(operation=r.operation, unit=r.unit, unit_price=r.unit_price) for r in card.rates
        ],
        multipliers=[
            Multiplier(dimension=m.dimension, value=m.value, factor=m.factor)
            for m in card.multipliers
        ],
    )


@router.put(
    "/tenants/{tenant}/quota",
    summary="Set a tenant's quota for an operation",
    responses=documented(401, 403, 404, 422, 429),
)
async def put_quota(tenant: TenantRef, body: QuotaUpdate, gw: GatewayDep, _: Admin) -> Quota:
    found = await find_tenant(gw, tenant)
    request = billing_pb2.PutQuotaRequest(
        tenant_id=found.tenant_id,
        operation=body.operation,
        limit=body.limit,
        unit=body.unit,
        period=PERIODS[body.period],
        soft_limit_ratio=body.soft_limit_ratio or "",
        plan=body.plan or "",
    )
    quota: billing_pb2.Quota = await gw.peers.unary(PUT_QUOTA, request)
    return Quota(
        tenant_id=quota.tenant_id,
        operation=quota.operation,
        limit=quota.limit,
        unit=quota.unit,
        period=PERIOD_NAMES.get(quota.period, "month"),
        soft_limit_ratio=quota.soft_limit_ratio or None,
        plan=quota.plan or None,
    )


class TenantSettingsUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    keep_generation_inputs: bool = Field(
        description="Keep each generation's input (prompt or messages) as an atom of the"
        " tenant, so the generation can be re-run from its receipt; false: the receipt keeps"
        " the input's SHA-256 only"
    )


class TenantSettings(TenantSettingsUpdate):
    tenant_id: str
    name: str


@router.get(
    "/tenants/{tenant}/settings",
    summary="A tenant's settings",
    responses=documented(401, 403, 404, 429),
)
async def get_tenant_settings(tenant: TenantRef, gw: GatewayDep, _: Admin) -> TenantSettings:
    return _settings(await find_tenant(gw, tenant))


@router.put(
    "/tenants/{tenant}/settings",
    summary="Change a tenant's settings",
    responses=documented(401, 403, 404, 422, 429),
)
async def put_tenant_settings(
    tenant: TenantRef, body: TenantSettingsUpdate, gw: GatewayDep, _: Admin
) -> TenantSettings:
    found = await find_tenant(gw, tenant)
    return _settings(await gw.store.set_keep_generation_inputs(found, body.keep_generation_inputs))


class ErasedTenant(BaseModel):
    tenant_id: str
    name: str
    erased_at: datetime
    keys_revoked: int = Field(description="API keys this call revoked")
    documents_released: int = Field(description="Documents this call deleted")
    blobs_removed: int = Field(description="Blobs removed because no tenant references them")


@router.delete(
    "/tenants/{tenant}",
    summary="Erase a tenant",
    description="Revokes every API key of the tenant, deletes every document it holds (as "
    "DELETE /v1/atoms/{id}: catalog, search, storage metering, blobs no other tenant "
    "references) and destroys its data key, so the metadata, sources and reasons it wrote, "
    "sealed in the log, are unreadable for good: a replay shows them as [erased] and no "
    "projection rebuilt from the log holds anything of them. Billing keeps its ledger and "
    "invoices (financial records: the tenant id, quantities and amounts, never content). "
    "Erasing again is harmless and answers the same way with nothing left to release.",
    responses=documented(401, 403, 404, 422, 429, 503, 504),
)
async def erase_tenant(tenant: TenantRef, gw: GatewayDep, principal: Admin) -> ErasedTenant:
    found = await find_tenant(gw, tenant)
    revoked = await gw.store.revoke_all(found)
    request = ingest_pb2.EraseTenantRequest(
        tenant_id=found.tenant_id, actor=f"key:{principal.key_id}"
    )
    reply: ingest_pb2.EraseTenantReply = await gw.peers.unary(ERASE_TENANT, request)
    erased = await gw.store.mark_erased(found)
    assert erased.erased_at is not None
    return ErasedTenant(
        tenant_id=erased.tenant_id,
        name=erased.name,
        erased_at=erased.erased_at,
        keys_revoked=revoked,
        documents_released=reply.documents_released,
        blobs_removed=reply.blobs_removed,
    )


def _settings(tenant: Tenant) -> TenantSettings:
    return TenantSettings(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        keep_generation_inputs=tenant.keep_generation_inputs,
    )

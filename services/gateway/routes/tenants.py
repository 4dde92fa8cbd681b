"""/v1/admin/tenants and /v1/admin/keys: tenants and their API keys, as `hartonomous tenants`
and `hartonomous keys` manage them, for admins (and the console)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Response
from pydantic import BaseModel, ConfigDict, Field

from services.gateway.deps import Admin, GatewayDep
from services.gateway.keys import Role
from services.gateway.problems import ProblemError, documented
from services.gateway.store import Tenant, TenantErased, TenantExists

router = APIRouter(prefix="/v1/admin", tags=["tenants"])

TenantRef = Annotated[str, Path(min_length=1, max_length=64, description="Tenant id or name")]
KeyId = Annotated[str, Path(min_length=1, max_length=64, description="The key's id (hk_<id>_…)")]


class TenantCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=64, examples=["acme"])


class TenantEntry(BaseModel):
    tenant_id: str
    name: str
    created_at: datetime
    erased_at: datetime | None


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role = Field(description="reader: search and read; writer: also ingest; admin: all")


class KeyEntry(BaseModel):
    key_id: str
    tenant_id: str
    role: Role
    created_at: datetime
    revoked_at: datetime | None


class KeyIssued(KeyEntry):
    api_key: str = Field(description="The whole key, shown this once: it is stored hashed")


@router.get("/tenants", summary="Every tenant", responses=documented(401, 403, 429))
async def list_tenants(gw: GatewayDep, _: Admin) -> list[TenantEntry]:
    return [_tenant_entry(t) for t in await gw.store.tenants()]


@router.post(
    "/tenants",
    status_code=201,
    summary="Create a tenant",
    responses=documented(401, 403, 409, 422, 429),
)
async def create_tenant(body: TenantCreate, gw: GatewayDep, _: Admin) -> TenantEntry:
    try:
        return _tenant_entry(await gw.store.create_tenant(body.name))
    except TenantExists as exc:
        raise ProblemError(409, str(exc)) from None
    except ValueError as exc:  # not a tenant name
        raise ProblemError(422, str(exc), kind="invalid-request") from None


@router.get(
    "/tenants/{tenant}/keys",
    summary="A tenant's API keys, revoked ones included",
    responses=documented(401, 403, 404, 429),
)
async def list_keys(tenant: TenantRef, gw: GatewayDep, _: Admin) -> list[KeyEntry]:
    return [
        KeyEntry(
            key_id=k.key_id,
            tenant_id=k.tenant_id,
            role=k.role,
            created_at=k.created_at,
            revoked_at=k.revoked_at,
        )
        for k in await gw.store.keys_of(await find_tenant(gw, tenant))
    ]


@router.post(
    "/tenants/{tenant}/keys",
    status_code=201,
    summary="Issue an API key (its secret is in this answer only)",
    responses=documented(401, 403, 404, 409, 422, 429),
)
async def create_key(
    tenant: TenantRef, body: KeyCreate, gw: GatewayDep, _: Admin, response: Response
) -> KeyIssued:
    found = await find_tenant(gw, tenant)
    try:
        issued = await gw.store.issue_key(found, body.role)
    except TenantErased as exc:
        raise ProblemError(409, str(exc)) from None
    response.headers["Cache-Control"] = "no-store"
    return KeyIssued(
        key_id=issued.key_id,
        tenant_id=found.tenant_id,
        role=issued.role,
        created_at=issued.created_at,
        revoked_at=None,
        api_key=issued.secret_key,
    )


@router.delete(
    "/keys/{key_id}",
    status_code=204,
    summary="Revoke an API key",
    description="Every gateway refuses it within its key cache's lifetime (5 s by default).",
    response_class=Response,
    responses=documented(401, 403, 404, 429),
)
async def revoke_key(key_id: KeyId, gw: GatewayDep, _: Admin) -> Response:
    if not await gw.store.revoke(key_id):
        raise ProblemError(404, f"no live key {key_id!r}")
    return Response(status_code=204)


async def find_tenant(gw: GatewayDep, tenant: str) -> Tenant:
    found = await gw.store.find_tenant(tenant)
    if found is None:
        raise ProblemError(404, f"no tenant {tenant!r}")
    return found


def _tenant_entry(tenant: Tenant) -> TenantEntry:
    return TenantEntry(
        tenant_id=tenant.tenant_id,
        name=tenant.name,
        created_at=tenant.created_at,
        erased_at=tenant.erased_at,
    )

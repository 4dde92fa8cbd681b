"""Tenants and API keys in Postgres schema `gateway` (the gateway's own state; it never reads
another service's schema). Rows are never deleted: a revoked key keeps its row with
`revoked_at`, so the tables are also the audit trail of who could call when."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

from services.gateway import keys
from services.gateway.keys import Role

_SCHEMA = """
create schema if not exists gateway;
create table if not exists gateway.tenants (
    tenant_id text primary key,
    name text not null unique,
    created_at timestamptz not null default now()
);
create table if not exists gateway.api_keys (
    key_id text primary key,
    tenant_id text not null references gateway.tenants,
    role text not null check (role in ('reader', 'writer', 'admin')),
    salt bytea not null,
    secret_hash bytea not null,
    created_at timestamptz not null default now(),
    revoked_at timestamptz
);
create index if not exists api_keys_tenant on gateway.api_keys (tenant_id);
-- A tenant's settings (columns with defaults, added as they come).
alter table gateway.tenants
    add column if not exists keep_generation_inputs boolean not null default true;
alter table gateway.tenants add column if not exists erased_at timestamptz;
"""

# Serialises schema creation and the first-start bootstrap across processes (CLI and `up`).
_LOCK = 0x6761_7465  # "gate"

BOOTSTRAP_TENANT = "default"

Conn: TypeAlias = "asyncpg.pool.PoolConnectionProxy[asyncpg.Record]"


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    name: str
    created_at: datetime
    # Each generation's input kept as an atom of the tenant, so the generation can be re-run.
    keep_generation_inputs: bool = True
    # When the tenant was erased (its keys revoked, its data released, its data key destroyed).
    erased_at: datetime | None = None


@dataclass(frozen=True)
class KeyRecord:
    key_id: str
    tenant_id: str
    role: Role
    salt: bytes
    secret_hash: bytes
    created_at: datetime
    revoked_at: datetime | None


@dataclass(frozen=True)
class IssuedKey:
    """A new key: `secret_key` exists only here, never in the database."""

    key_id: str
    tenant: Tenant
    role: Role
    secret_key: str
    created_at: datetime


class TenantExists(ValueError):
    pass


class TenantErased(ValueError):
    """No key is issued for an erased tenant."""


class KeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def setup(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _LOCK)
            await conn.execute(_SCHEMA)

    async def ping(self) -> None:
        await self._pool.fetchval("select 1")

    async def create_tenant(self, name: str) -> Tenant:
        async with self._pool.acquire() as conn:
            return await _insert_tenant(conn, name)

    async def tenants(self) -> list[Tenant]:
        rows = await self._pool.fetch("select * from gateway.tenants order by created_at, name")
        return [Tenant(**dict(r)) for r in rows]

    async def find_tenant(self, name_or_id: str) -> Tenant | None:
        row = await self._pool.fetchrow(
            "select * from gateway.tenants where name = $1 or tenant_id = $1", name_or_id
        )
        return Tenant(**dict(row)) if row else None

    async def set_keep_generation_inputs(self, tenant: Tenant, keep: bool) -> Tenant:
        row = await self._pool.fetchrow(
            "update gateway.tenants set keep_generation_inputs = $2 where tenant_id = $1"
            " returning *",
            tenant.tenant_id,
            keep,
        )
        if row is None:
            raise LookupError(f"no tenant {tenant.tenant_id}")
        return Tenant(**dict(row))

    async def issue_key(self, tenant: Tenant, role: Role) -> IssuedKey:
        async with self._pool.acquire() as conn:
            return await _insert_key(conn, tenant, role)

    async def key(self, key_id: str) -> KeyRecord | None:
        row = await self._pool.fetchrow("select * from gateway.api_keys where key_id = $1", key_id)
        if row is None:
            return None
        return KeyRecord(**{**dict(row), "role": Role(row["role"])})

    async def keys_of(self, tenant: Tenant) -> list[KeyRecord]:
        rows = await self._pool.fetch(
            "select * from gateway.api_keys where tenant_id = $1 order by created_at",
            tenant.tenant_id,
        )
        return [KeyRecord(**{**dict(r), "role": Role(r["role"])}) for r in rows]

    async def revoke(self, key_id: str) -> bool:
        """True when the key existed and was live; revoking twice keeps the first time."""
        status = await self._pool.execute(
            "update gateway.api_keys set revoked_at = now()"
            " where key_id = $1 and revoked_at is null",
            key_id,
        )
        return bool(status == "UPDATE 1")

    async def revoke_all(self, tenant: Tenant) -> int:
        """Revoke every live key of the tenant; how many."""
        status = await self._pool.execute(
            "update gateway.api_keys set revoked_at = now()"
            " where tenant_id = $1 and revoked_at is null",
            tenant.tenant_id,
        )
        return int(status.split()[-1])

    async def mark_erased(self, tenant: Tenant) -> Tenant:
        """The first erasure's time stays."""
        row = await self._pool.fetchrow(
            "update gateway.tenants set erased_at = coalesce(erased_at, now())"
            " where tenant_id = $1 returning *",
            tenant.tenant_id,
        )
        if row is None:
            raise LookupError(f"no tenant {tenant.tenant_id}")
        return Tenant(**dict(row))

    async def bootstrap(self) -> IssuedKey | None:
        """On the very first start (no tenant at all): tenant `default` and an admin key."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _LOCK)
            if await conn.fetchval("select exists (select 1 from gateway.tenants)"):
                return None
            tenant = await _insert_tenant(conn, BOOTSTRAP_TENANT)
            return await _insert_key(conn, tenant, Role.ADMIN)


async def _insert_tenant(conn: Conn, name: str) -> Tenant:
    if not keys.valid_tenant_name(name):
        raise ValueError(
            f"tenant name {name!r}: 1-64 letters, digits, '.', '_' or '-', starting alphanumeric"
        )
    row = await conn.fetchrow(
        "insert into gateway.tenants (tenant_id, name) values ($1, $2)"
        " on conflict (name) do nothing returning *",
        str(uuid.uuid4()),
        name,
    )
    if row is None:
        raise TenantExists(f"tenant {name!r} already exists")
    return Tenant(**dict(row))


async def _insert_key(conn: Conn, tenant: Tenant, role: Role) -> IssuedKey:
    if tenant.erased_at is not None:
        raise TenantErased(f"tenant {tenant.name!r} was erased at {tenant.erased_at.isoformat()}")
    new = keys.mint()
    created_at = await conn.fetchval(
        "insert into gateway.api_keys (key_id, tenant_id, role, salt, secret_hash)"
        " values ($1, $2, $3, $4, $5) returning created_at",
        new.key_id,
        tenant.tenant_id,
        role.value,
        new.salt,
        new.secret_hash,
    )
    return IssuedKey(new.key_id, tenant, role, new.secret_key, created_at)

"""The key store in Postgres schema `keys`: a destroyed key keeps its row (so no new key is ever
made for an erased tenant) with the secret gone."""

from __future__ import annotations

import os
import uuid

import asyncpg

from hartonomous.sealing.port import DataKey, TenantErasedError

SCHEMA = "keys"
_SETUP_LOCK = 0x4B45_5953  # advisory lock: services starting together create the schema once

_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.data_keys (
    tenant_id text primary key,
    key_id text not null unique,
    secret bytea,
    created_at timestamptz not null default now(),
    destroyed_at timestamptz);
"""

# A concurrent first use by two requests makes one key: the loser reads the winner's row.
_MAKE = f"""
insert into {SCHEMA}.data_keys (tenant_id, key_id, secret) values ($1, $2, $3)
on conflict (tenant_id) do nothing
"""

_DESTROY = f"""
insert into {SCHEMA}.data_keys (tenant_id, key_id, secret, destroyed_at)
values ($1, $2, null, now())
on conflict (tenant_id) do update set secret = null, destroyed_at = now()
where {SCHEMA}.data_keys.destroyed_at is null
"""


class PostgresKeyStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def setup(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _SETUP_LOCK)
            await conn.execute(_DDL)

    async def current(self, tenant_id: str) -> DataKey:
        row = await self._row(tenant_id)
        if row is None:
            await self._pool.execute(_MAKE, tenant_id, str(uuid.uuid4()), os.urandom(32))
            row = await self._row(tenant_id)
            assert row is not None
        if row["secret"] is None:
            raise TenantErasedError(tenant_id)
        return DataKey(row["key_id"], bytes(row["secret"]))

    async def find(self, key_id: str) -> tuple[str, DataKey | None] | None:
        row = await self._pool.fetchrow(
            f"select tenant_id, secret from {SCHEMA}.data_keys where key_id = $1", key_id
        )
        if row is None:
            return None
        secret = row["secret"]
        return row["tenant_id"], None if secret is None else DataKey(key_id, bytes(secret))

    async def destroy(self, tenant_id: str) -> bool:
        status = await self._pool.execute(_DESTROY, tenant_id, str(uuid.uuid4()))
        return bool(status.endswith(" 1"))

    async def _row(self, tenant_id: str) -> asyncpg.Record | None:
        return await self._pool.fetchrow(
            f"select key_id, secret from {SCHEMA}.data_keys where tenant_id = $1", tenant_id
        )

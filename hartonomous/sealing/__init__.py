"""Crypto-shredding: a tenant's free-form fields travel in events sealed with that tenant's data
key, so destroying the key erases them from the append-only log without rewriting it.

`Sealer` seals and opens field values; the keys sit behind the `KeyStore` port (Postgres here,
a KMS later). What is sealed, and what is kept after an erasure, is listed in the README
(Deleting data)."""

from __future__ import annotations

import asyncpg

from hartonomous.sealing.port import DataKey, KeyStore, TenantErasedError
from hartonomous.sealing.postgres import PostgresKeyStore
from hartonomous.sealing.sealer import ERASED, SealedValueError, Sealer, is_sealed

__all__ = [
    "ERASED",
    "DataKey",
    "KeyStore",
    "PostgresKeyStore",
    "SealedValueError",
    "Sealer",
    "TenantErasedError",
    "is_sealed",
    "sealer_on",
]


async def sealer_on(pool: asyncpg.Pool) -> Sealer:
    """A sealer whose keys live in this Postgres (the schema is made if missing)."""
    keys = PostgresKeyStore(pool)
    await keys.setup()
    return Sealer(keys)

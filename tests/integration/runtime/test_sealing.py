"""Sealing with data keys in a real Postgres: a value seals for one tenant and opens only for it,
a tampered one is refused, clear text from before sealing opens as itself, and a destroyed key
erases everything sealed with it, for this process and every other."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import asyncpg
import pytest

from hartonomous.postgres import create_pool
from hartonomous.sealing import (
    PostgresKeyStore,
    SealedValueError,
    Sealer,
    TenantErasedError,
    is_sealed,
    sealer_on,
)
from hartonomous.sealing.port import DataKey
from hartonomous.sealing.sealer import KEY_CACHE_SECONDS
from tests.support.postgres import fresh_database


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(await fresh_database(), max_size=2)
    yield pool
    await pool.close()


async def test_a_sealed_value_opens_for_its_tenant_only(pool: asyncpg.Pool) -> None:
    sealer = await sealer_on(pool)
    sealed = await sealer.seal("acme", '{"owner": "Jane Roe"}')
    assert is_sealed(sealed) and "Jane" not in sealed
    assert await sealer.open("acme", sealed) == '{"owner": "Jane Roe"}'
    assert await sealer.seal("acme", "x") != await sealer.seal("acme", "x")  # a nonce each
    with pytest.raises(SealedValueError, match="another tenant"):
        await sealer.open("globex", sealed)
    # Another process (a sealer of its own on the same store) opens it too.
    assert await Sealer(PostgresKeyStore(pool)).open("acme", sealed) == '{"owner": "Jane Roe"}'


async def test_tampered_and_truncated_values_are_refused(pool: asyncpg.Pool) -> None:
    sealer = await sealer_on(pool)
    sealed = await sealer.seal("acme", "notes/ledger.txt")
    # One bit of the bytes flipped (a character of the text may differ only in base64's unused
    # low bits, decoding to the same bytes: a 1-in-16 chance the old edit changed nothing).
    prefix, token = sealed.rsplit(":", 1)
    raw = bytearray(base64.urlsafe_b64decode(token))
    raw[len(raw) // 2] ^= 0x01
    flipped = f"{prefix}:{base64.urlsafe_b64encode(bytes(raw)).decode()}"
    with pytest.raises(SealedValueError, match="tampered"):
        await sealer.open("acme", flipped)
    key_id = sealed.split(":")[2]
    with pytest.raises(SealedValueError, match="truncated"):
        await sealer.open("acme", f"sealed:v1:{key_id}:c2hvcnQ=")
    with pytest.raises(SealedValueError, match="never made"):
        await sealer.open("acme", sealed.replace(key_id, "0" * len(key_id)))
    with pytest.raises(SealedValueError, match="base64"):
        await sealer.open("acme", sealed + "%")
    assert await sealer.open("acme", '{"written": "before sealing"}') == (
        '{"written": "before sealing"}'
    )


async def test_a_destroyed_key_erases_what_it_sealed_everywhere(pool: asyncpg.Pool) -> None:
    now = [0.0]
    sealer = await sealer_on(pool)
    other = Sealer(PostgresKeyStore(pool), clock=lambda: now[0])
    kept = await sealer.seal("globex", "globex's")
    sealed = await sealer.seal("acme", "acme's")
    assert await other.open("acme", sealed) == "acme's"  # cached in the other process now

    assert await sealer.keys.destroy("acme") is True
    sealer.forget("acme")
    assert await sealer.open("acme", sealed) is None
    with pytest.raises(TenantErasedError, match="erased"):
        await sealer.seal("acme", "anything new")
    assert await sealer.keys.destroy("acme") is False  # once only
    # The other process stops opening it once its cached key expires.
    now[0] += KEY_CACHE_SECONDS + 1
    assert await other.open("acme", sealed) is None
    assert await other.open("globex", kept) == "globex's"


async def test_erasing_a_tenant_that_never_sealed_refuses_it_a_key(pool: asyncpg.Pool) -> None:
    sealer = await sealer_on(pool)
    assert await sealer.keys.destroy("initech") is True
    with pytest.raises(TenantErasedError):
        await sealer.seal("initech", "first words")


class CountingKeys:
    """The real store, counting the reads a sealer makes of it."""

    def __init__(self, store: PostgresKeyStore) -> None:
        self.store, self.reads = store, 0

    async def current(self, tenant_id: str) -> DataKey:
        self.reads += 1
        return await self.store.current(tenant_id)

    async def find(self, key_id: str) -> tuple[str, DataKey | None] | None:
        self.reads += 1
        return await self.store.find(key_id)

    async def destroy(self, tenant_id: str) -> bool:
        return await self.store.destroy(tenant_id)


async def test_a_sealer_holds_the_keys_it_used_last_and_no_more(pool: asyncpg.Pool) -> None:
    """Many tenants do not grow a sealer without bound: past `max_cached` keys, the least
    recently used one is read from the store again when next needed."""
    store = PostgresKeyStore(pool)
    await store.setup()
    keys = CountingKeys(store)
    sealer = Sealer(keys, max_cached=2)
    for tenant in ("acme", "globex", "initech"):
        await sealer.seal(tenant, "x")
    assert keys.reads == 3
    await sealer.seal("initech", "x")  # among the last two: cached
    assert keys.reads == 3
    await sealer.seal("acme", "x")  # dropped to make room for initech: read again
    assert keys.reads == 4

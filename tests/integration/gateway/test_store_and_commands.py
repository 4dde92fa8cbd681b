"""Tenants and keys in Postgres, the authenticator's cache, and the `tenants` / `keys` CLI
commands (run against the same database, as they are beside a running platform)."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from hartonomous.commands import Command
from hartonomous.postgres import create_pool
from hartonomous.settings import Settings, add_arguments
from services.gateway.auth import Authenticator, Unauthenticated
from services.gateway.commands import keys_command, tenants
from services.gateway.keys import Role
from services.gateway.store import KeyStore, TenantExists


@pytest_asyncio.fixture
async def store(pg_url: str) -> AsyncIterator[KeyStore]:
    pool = await create_pool(pg_url, max_size=4)
    opened = KeyStore(pool)
    await opened.setup()
    await opened.setup()  # idempotent
    yield opened
    await pool.close()


async def test_bootstrap_happens_once_even_when_raced(store: KeyStore) -> None:
    first = await asyncio.gather(*(store.bootstrap() for _ in range(4)))
    issued = [key for key in first if key is not None]
    assert len(issued) == 1
    assert issued[0].tenant.name == "default" and issued[0].role is Role.ADMIN
    assert await store.bootstrap() is None


async def test_tenants_are_unique_by_name(store: KeyStore) -> None:
    tenant = await store.create_tenant("acme")
    assert await store.find_tenant("acme") == tenant
    assert await store.find_tenant(tenant.tenant_id) == tenant
    with pytest.raises(TenantExists):
        await store.create_tenant("acme")
    with pytest.raises(ValueError, match="tenant name"):
        await store.create_tenant("no spaces")


async def test_revocation_reaches_the_authenticator_after_its_cache(store: KeyStore) -> None:
    now = [0.0]
    auth = Authenticator(store, ttl=5.0, clock=lambda: now[0])
    tenant = await store.create_tenant("acme")
    issued = await store.issue_key(tenant, Role.READER)
    principal = await auth.authenticate(issued.secret_key)
    assert (principal.tenant_id, principal.role) == (tenant.tenant_id, Role.READER)
    assert await store.revoke(issued.key_id) and not await store.revoke(issued.key_id)
    await auth.authenticate(issued.secret_key)  # still cached
    now[0] += 5.1
    with pytest.raises(Unauthenticated):
        await auth.authenticate(issued.secret_key)
    with pytest.raises(Unauthenticated):
        await auth.authenticate(issued.secret_key.replace(issued.key_id, "f" * 16))


async def run(pg_url: str, command: Command, *argv: str) -> int:
    """The command as `hartonomous` runs it, against this test's database."""
    parser = argparse.ArgumentParser()
    command.add_arguments(parser)
    add_arguments(parser)
    args = parser.parse_args([*argv, "--postgres-url", pg_url])
    return await command.run(args, Settings().with_args(args))


async def test_cli_prints_ids_and_keys_alone_on_the_last_line(
    pg_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(pg_url, tenants, "create", "acme") == 0
    tenant_id = capsys.readouterr().out.strip().splitlines()[-1]
    assert await run(pg_url, keys_command, "create", "--tenant", "acme", "--role", "writer") == 0
    out = capsys.readouterr()
    key = out.out.strip().splitlines()[-1]
    assert key.startswith("hk_") and "shown this once" in out.err
    assert await run(pg_url, keys_command, "list", "--tenant", tenant_id, "--json") == 0
    (row,) = json.loads(capsys.readouterr().out)
    assert row["role"] == "writer" and row["revoked_at"] is None and key not in json.dumps(row)
    assert await run(pg_url, keys_command, "revoke", key) == 0  # the whole key works too
    assert await run(pg_url, keys_command, "revoke", row["key_id"]) == 1
    assert await run(pg_url, tenants, "list", "--json") == 0
    capsys.readouterr()
    assert await run(pg_url, keys_command, "list", "--tenant", "acme") == 0
    assert "revoked" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv",
    [
        ("create",),
        ("create", "--tenant", "acme"),
        ("list",),
        ("revoke",),
    ],
)
async def test_cli_usage_errors(pg_url: str, argv: tuple[str, ...]) -> None:
    assert await run(pg_url, keys_command, *argv) == 2


async def test_cli_refuses_unknown_tenants_and_duplicates(pg_url: str) -> None:
    assert await run(pg_url, keys_command, "create", "--tenant", "nobody", "--role", "reader") == 1
    assert await run(pg_url, tenants, "create", "acme") == 0
    assert await run(pg_url, tenants, "create", "acme") == 1
    assert await run(pg_url, tenants, "create") == 2

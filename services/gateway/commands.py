"""`hartonomous tenants ...` and `hartonomous keys ...`: manage tenants and API keys straight in
Postgres, so they work while the platform runs on the same data dir (and before it first ran).

A new id or key is printed alone on the last line of stdout; everything else goes to stderr."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from hartonomous.commands import Command
from hartonomous.postgres import create_pool, postgres_url
from hartonomous.settings import Settings
from services.gateway import keys
from services.gateway.keys import Role
from services.gateway.store import KeyStore, Tenant, TenantErased, TenantExists

USAGE_ERROR = 2


@asynccontextmanager
async def _store(settings: Settings) -> AsyncIterator[KeyStore]:
    url = await asyncio.to_thread(postgres_url, settings)
    pool = await create_pool(url, max_size=1)
    try:
        store = KeyStore(pool)
        await store.setup()
        yield store
    finally:
        await pool.close()


def _say(message: str) -> None:
    print(message, file=sys.stderr)


class TenantsCommand(Command):
    name = "tenants"
    help = "create, list and configure tenants (each holds its own atoms, keys and usage)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["create", "list", "set"])
        parser.add_argument("tenant_name", nargs="?", metavar="NAME", help="for create and set")
        parser.add_argument("--json", action="store_true", help="list as JSON")
        parser.add_argument(
            "--keep-generation-inputs",
            choices=["true", "false"],
            help="set: keep each generation's input, so it can be re-run (default true)",
        )

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        async with _store(settings) as store:
            if args.action == "list":
                await _list_tenants(store, args.json)
                return 0
            if not args.tenant_name:
                _say(f"usage: hartonomous tenants {args.action} NAME")
                return USAGE_ERROR
            if args.action == "set":
                return await _set(store, args.tenant_name, args.keep_generation_inputs)
            try:
                tenant = await store.create_tenant(args.tenant_name)
            except (TenantExists, ValueError) as exc:
                _say(str(exc))
                return 1
            _say(f"created tenant {tenant.name!r}; its id:")
            print(tenant.tenant_id)
            return 0


class KeysCommand(Command):
    name = "keys"
    help = "create, list and revoke API keys"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["create", "list", "revoke"])
        parser.add_argument("key_id", nargs="?", metavar="KEY_ID", help="for revoke")
        parser.add_argument("--tenant", help="tenant name or id (create, list)")
        parser.add_argument("--role", choices=[r.value for r in Role], help="for create")
        parser.add_argument("--json", action="store_true", help="list as JSON")

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        if args.action == "revoke" and not args.key_id:
            _say("usage: hartonomous keys revoke KEY_ID")
            return USAGE_ERROR
        if args.action != "revoke" and not args.tenant:
            _say(f"usage: hartonomous keys {args.action} --tenant NAME ...")
            return USAGE_ERROR
        if args.action == "create" and not args.role:
            _say("usage: hartonomous keys create --tenant NAME --role reader|writer|admin")
            return USAGE_ERROR
        async with _store(settings) as store:
            if args.action == "revoke":
                return await _revoke(store, args.key_id)
            tenant = await store.find_tenant(args.tenant)
            if tenant is None:
                _say(f"no tenant {args.tenant!r}")
                return 1
            if args.action == "list":
                await _list_keys(store, tenant, args.json)
                return 0
            try:
                issued = await store.issue_key(tenant, Role(args.role))
            except TenantErased as exc:
                _say(str(exc))
                return 1
            _say(
                f"created {issued.role} key {issued.key_id} for tenant {tenant.name!r}."
                " It is shown this once: store it now."
            )
            print(issued.secret_key)
            return 0


async def _revoke(store: KeyStore, key: str) -> int:
    parsed = keys.parse(key)  # the whole key works too
    key_id = parsed[0] if parsed else key
    if await store.revoke(key_id):
        _say(f"revoked key {key_id}")
        return 0
    _say(f"no live key {key_id!r}")
    return 1


async def _list_keys(store: KeyStore, tenant: Tenant, as_json: bool) -> None:
    rows = [
        {
            "key_id": k.key_id,
            "tenant_id": k.tenant_id,
            "role": k.role.value,
            "created_at": k.created_at.isoformat(),
            "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
        }
        for k in await store.keys_of(tenant)
    ]
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "live"
        print(f"{row['key_id']}  {row['role']:<6}  {row['created_at']}  {state}")


async def _set(store: KeyStore, name: str, keep_generation_inputs: str | None) -> int:
    if keep_generation_inputs is None:
        _say("usage: hartonomous tenants set NAME --keep-generation-inputs true|false")
        return USAGE_ERROR
    tenant = await store.find_tenant(name)
    if tenant is None:
        _say(f"no tenant {name!r}")
        return 1
    tenant = await store.set_keep_generation_inputs(tenant, keep_generation_inputs == "true")
    _say(f"tenant {tenant.name!r}: keep_generation_inputs={tenant.keep_generation_inputs}")
    return 0


async def _list_tenants(store: KeyStore, as_json: bool) -> None:
    rows = [
        {
            "tenant_id": t.tenant_id,
            "name": t.name,
            "created_at": t.created_at.isoformat(),
            "keep_generation_inputs": t.keep_generation_inputs,
        }
        for t in await store.tenants()
    ]
    if as_json:
        print(json.dumps(rows))
        return
    for row in rows:
        print(f"{row['tenant_id']}  {row['name']}  {row['created_at']}")


tenants = TenantsCommand()
keys_command = KeysCommand()

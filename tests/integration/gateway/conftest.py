from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from grpc_health.v1 import health_pb2

from hartonomous.postgres import create_pool
from hartonomous.runtime.service import Service
from hartonomous.settings import Settings
from services.control.service import ControlService
from services.gateway.config import GatewayConfig
from services.gateway.keys import Role
from services.gateway.service import GatewayService
from services.gateway.store import KeyStore
from services.ooda.decide.service import DecideService
from tests.integration.gateway.fakes import SERVICES, Peers, fake_peers
from tests.support.harness import Harness, running
from tests.support.postgres import fresh_database

MIB = 1024 * 1024

# Generous rates (the limiter has its own tests); small bodies so "too large" is cheap.
CONFIG = GatewayConfig(
    rate_per_second=10_000,
    rate_burst=10_000,
    max_body_bytes=64 * 1024,
    max_upload_bytes=4 * MIB,
    key_cache_seconds=0,
)


@dataclass
class Gateway:
    """The real GatewayService on a real Postgres and log, in front of fake peers."""

    service: GatewayService
    peers: Peers
    store: KeyStore
    http: httpx.AsyncClient
    keys: dict[tuple[str, Role], str]
    tenant_ids: dict[str, str]
    harness: Harness

    def auth(self, role: Role = Role.WRITER, tenant: str = "acme") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[(tenant, role)]}"}


@asynccontextmanager
async def running_gateway(
    config: GatewayConfig, data_dir: Path, *real: Service
) -> AsyncIterator[Gateway]:
    """Tenants acme and globex, with a key of every role each; `real`: services run in place
    of their stand-ins."""
    pg_url = await fresh_database()
    peers = fake_peers()
    service = GatewayService(config)
    settings = Settings(data_dir=data_dir, http_port=0)
    # The real control service and the loop's decide stage beside the stand-ins: their
    # validation is what the config and loop routes rely on, and they need no other peer.
    async with running(
        service,
        ControlService(),
        DecideService(),
        *real,
        pg_url=pg_url,
        settings=settings,
        partitions=1,
        peers=peers.registrations,
    ) as harness:
        peers.health = harness.host.health
        await peers.health.set(SERVICES["provenance"], health_pb2.HealthCheckResponse.SERVING)
        pool = await create_pool(pg_url, max_size=2)
        try:
            store = KeyStore(pool)
            keys: dict[tuple[str, Role], str] = {}
            tenant_ids: dict[str, str] = {}
            for name in ("acme", "globex"):
                tenant = await store.create_tenant(name)
                tenant_ids[name] = tenant.tenant_id
                for role in Role:
                    keys[(name, role)] = (await store.issue_key(tenant, role)).secret_key
            async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
                yield Gateway(service, peers, store, http, keys, tenant_ids, harness)
        finally:
            await pool.close()


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def module_gateway(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    async with running_gateway(CONFIG, tmp_path_factory.mktemp("gateway")) as gateway:
        yield gateway


@pytest.fixture
def gw(module_gateway: Gateway) -> Gateway:
    """The module's gateway, with the fakes' script and records reset for this test."""
    module_gateway.peers.script.reset()
    module_gateway.peers.ingest.uploads.clear()
    return module_gateway

"""The gateway as a Service: the one-time bootstrap banner, a clear error when the port is
taken, readiness that names what is down, CORS only when asked, and a drain that lets
in-flight requests finish."""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from grpc_health.v1 import health_pb2

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.events import AvroCodec
from hartonomous.runtime.service import ServiceContext
from hartonomous.settings import Settings
from services.gateway.keys import Role
from services.gateway.service import GatewayService
from tests.integration.gateway.conftest import CONFIG, running_gateway
from tests.support.postgres import fresh_database

KEY = "export HARTONOMOUS_KEY=hk_"


async def test_first_start_prints_the_key_and_later_starts_do_not(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pg_url = await fresh_database()
    event_log = EmbeddedEventLog(pg_url)
    await event_log.start()
    settings = Settings(data_dir=tmp_path, http_port=0)
    banners = []
    for _ in range(2):
        service = GatewayService(CONFIG)
        await service.start(ServiceContext(settings, event_log, AvroCodec(), pg_url))
        await service.stop()
        banner = capsys.readouterr().out
        assert service.url in banner
        assert sum(line.lstrip().startswith("curl ") for line in banner.splitlines()) == 3
        banners.append(banner)
    await event_log.close()
    assert KEY in banners[0] and KEY not in banners[1]


async def test_a_taken_port_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        pg_url = await fresh_database()
        settings = Settings(data_dir=tmp_path, http_port=port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            await GatewayService(CONFIG).start(
                ServiceContext(settings, EmbeddedEventLog(pg_url), AvroCodec(), pg_url)
            )


async def test_stop_lets_in_flight_requests_finish(tmp_path: Path) -> None:
    async with running_gateway(CONFIG, tmp_path) as gw:
        gw.peers.script.delays["Search"] = 0.5
        request = asyncio.create_task(
            gw.http.post("/v1/search", json={"query": "q"}, headers=gw.auth())
        )
        await asyncio.sleep(0.2)
        await gw.service.stop()
        assert (await request).status_code == 200
        with pytest.raises(httpx.ConnectError):
            await gw.http.get("/healthz")


async def test_readiness_names_the_dependency_that_is_down(tmp_path: Path) -> None:
    async with running_gateway(CONFIG, tmp_path) as gw:
        ready = await gw.http.get("/readyz")
        assert ready.status_code == 200 and set(ready.json()["checks"]) == {
            "postgres",
            "log",
            "ingest",
            "inference",
            "search",
            "billing",
            "provenance",
            "control",
        }
        await gw.peers.health.set(
            "hartonomous.v1.Billing", health_pb2.HealthCheckResponse.NOT_SERVING
        )
        down = await gw.http.get("/readyz")
        assert (
            down.status_code == 503 and down.headers["content-type"] == "application/problem+json"
        )
        assert down.json()["detail"] == "not ready: billing: NOT_SERVING"
        assert (await gw.http.get("/healthz")).json() == {"status": "ok"}


async def test_cors_is_off_unless_origins_are_configured(tmp_path: Path) -> None:
    preflight = {
        "Origin": "https://app.example",
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type",
    }
    async with running_gateway(CONFIG, tmp_path / "off") as gw:
        off = await gw.http.options("/v1/search", headers=preflight)
        assert off.status_code == 405 and "access-control-allow-origin" not in off.headers
    allowed = replace(CONFIG, cors_origins=("https://app.example",))
    async with running_gateway(allowed, tmp_path / "on") as gw:
        on = await gw.http.options("/v1/search", headers=preflight)
        assert on.headers["access-control-allow-origin"] == "https://app.example"
        reply = await gw.http.get(
            "/v1/usage", headers={**gw.auth(Role.READER), "Origin": "https://app.example"}
        )
        assert reply.headers["access-control-allow-origin"] == "https://app.example"


async def test_metrics_count_requests_by_route_template(tmp_path: Path) -> None:
    async with running_gateway(CONFIG, tmp_path) as gw:
        await gw.http.get(f"/v1/atoms/{'0' * 64}", headers=gw.auth())
        await gw.http.get("/no/such/path")
        exposition = (await gw.http.get("/metrics")).text
    assert 'method="GET",route="/v1/atoms/{atom_id}",status="404"' in exposition
    assert 'route="unmatched",status="404"' in exposition and "/no/such/path" not in exposition

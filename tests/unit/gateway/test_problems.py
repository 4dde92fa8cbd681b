"""The gateway's last-resort error handling: its own database unreachable is a 503 the client
may retry (Retry-After), anything else unexpected a bare 500; both as problem details."""

from __future__ import annotations

import asyncpg
import httpx
import pytest
from fastapi import FastAPI

from services.gateway.problems import PROBLEM_JSON, CatchAll


def _app(error: Exception) -> FastAPI:
    app = FastAPI()

    @app.get("/fails")
    async def fails() -> None:
        raise error

    app.add_middleware(CatchAll)
    return app


@pytest.mark.parametrize(
    "error",
    [
        asyncpg.exceptions.ConnectionDoesNotExistError("connection was closed"),
        asyncpg.exceptions.AdminShutdownError("terminating connection"),
        ConnectionRefusedError(111, "Connect call failed"),
    ],
)
async def test_an_unreachable_database_is_a_503_to_retry(error: Exception) -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=_app(error))) as http:
        reply = await http.get("http://gateway/fails")
    assert reply.status_code == 503
    assert reply.headers["retry-after"] == "2"
    assert reply.headers["content-type"] == PROBLEM_JSON
    assert "unreachable" in reply.json()["detail"]


async def test_anything_else_is_a_bare_500() -> None:
    app = _app(KeyError("secret detail"))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app)) as http:
        reply = await http.get("http://gateway/fails")
    assert reply.status_code == 500
    assert "secret" not in reply.text

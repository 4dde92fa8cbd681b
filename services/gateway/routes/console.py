"""/console/: the web console, served by the gateway itself. One page and its own script and
style sheet (no framework, no build step, nothing fetched from anywhere else): the script
calls the public API with the session cookie, and these routes add what only a browser needs
(signing in and out, and the overview's live feed). Not in the OpenAPI document: the console's
own, not the public API."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Literal

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, RedirectResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from hartonomous.events import AvroCodec, decode_event
from hartonomous.events.payloads import TelemetryRecorded
from services.gateway.auth import Principal, Unauthenticated
from services.gateway.console.overview import Overview, hour_ago
from services.gateway.deps import Admin, Gateway, GatewayDep, Reader
from services.gateway.problems import ProblemError
from services.gateway.session import COOKIE, close_session, csrf_token, open_session

router = APIRouter(prefix="/console", include_in_schema=False)

ASSETS = Path(__file__).resolve().parents[1] / "console"
MEDIA = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}
# The page runs only its own script and style, talks only to this origin, and cannot be framed.
SECURITY = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
    "img-src 'self' data:; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
TICK_S = 2.0  # the overview's feed sends at least this often
FEED_LIFETIME_S = 300.0  # then the browser reconnects (EventSource does by itself)
_CODEC = AvroCodec()


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: str = Field(min_length=1, max_length=256)


class SessionInfo(BaseModel):
    tenant_id: str
    key_id: str
    role: Literal["reader", "writer", "admin"]
    csrf_token: str


@router.get("")
async def bare() -> RedirectResponse:
    return RedirectResponse("/console/", status_code=308)


@router.get("/")
async def page() -> Response:
    return _asset("index.html", "text/html; charset=utf-8")


@router.get("/assets/{name}")
async def asset(name: str) -> Response:
    suffix = Path(name).suffix
    if "/" in name or name.startswith(".") or suffix not in MEDIA:
        raise ProblemError(404, f"no console asset {name!r}")
    return _asset(name, MEDIA[suffix])


@router.post("/session")
async def sign_in(
    body: SignIn, request: Request, response: Response, gw: GatewayDep
) -> SessionInfo:
    key = body.api_key.strip()
    try:
        principal = await gw.authenticator.authenticate(key)
    except Unauthenticated as exc:
        raise ProblemError(401, str(exc), kind="unauthenticated") from None
    open_session(request, response, key)
    return _info(principal, key)


@router.get("/session")
async def whoami(request: Request, gw: GatewayDep) -> Response:
    """The signed-in session, or 204 (no session, or its key was revoked: the cookie goes)."""
    key = request.cookies.get(COOKIE)
    if key:
        try:
            principal = await gw.authenticator.authenticate(key)
        except Unauthenticated:
            pass
        else:
            return JSONResponse(_info(principal, key).model_dump())
    gone = Response(status_code=204)
    if key:
        close_session(request, gone)
    return gone


@router.delete("/session", status_code=204)
async def sign_out(request: Request, _: Reader) -> Response:
    response = Response(status_code=204)
    close_session(request, response)
    return response


@router.get("/telemetry")
async def telemetry(request: Request, gw: GatewayDep, _: Admin) -> StreamingResponse:
    """Server-sent events: the overview's snapshot now, then every TICK_S."""
    return StreamingResponse(
        _feed(request, gw),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _feed(request: Request, gw: Gateway) -> AsyncIterator[bytes]:
    overview = Overview()
    since, seen = hour_ago(), set[tuple[int, int]]()
    loop = asyncio.get_running_loop()
    ends = loop.time() + FEED_LIFETIME_S
    yield b"retry: 2000\n\n"
    while loop.time() < ends and not gw.stopping.is_set():
        since, seen = await _read(gw, overview, since, seen)
        yield f"data: {json.dumps(overview.snapshot())}\n\n".encode()
        if await request.is_disconnected():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(gw.stopping.wait(), TICK_S)


async def _read(
    gw: Gateway, overview: Overview, since: datetime, seen: set[tuple[int, int]]
) -> tuple[datetime, set[tuple[int, int]]]:
    """The windows published since `since` (those at `since` itself were read already)."""
    newest, fresh = since, set[tuple[int, int]]()
    async for record in gw.event_log.replay("telemetry", from_time=since):
        position = (record.partition, record.offset)
        if position in seen:
            continue
        fresh.add(position)
        newest = max(newest, record.timestamp)
        payload = decode_event(_CODEC, record).payload
        if isinstance(payload, TelemetryRecorded):
            overview.add(payload)
    return newest, (fresh or seen)


def _info(principal: Principal, key: str) -> SessionInfo:
    return SessionInfo(
        tenant_id=principal.tenant_id,
        key_id=principal.key_id,
        role=principal.role.value,
        csrf_token=csrf_token(key),
    )


def _asset(name: str, media_type: str) -> Response:
    path = ASSETS / name
    if not path.is_file():
        raise ProblemError(404, f"no console asset {name!r}")
    headers = {**SECURITY, "Cache-Control": "no-cache"}
    return Response(path.read_bytes(), media_type=media_type, headers=headers)

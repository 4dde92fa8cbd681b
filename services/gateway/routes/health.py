"""Probes and metrics: /healthz (the process answers), /readyz (every dependency answers),
/metrics (Prometheus: this process's whole registry, so consumer lag and batch sizes of the
services running beside the gateway show up too)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Literal

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import BaseModel

from services.gateway.clients import HEALTH_NAMES
from services.gateway.deps import GatewayDep
from services.gateway.problems import ProblemError, documented

router = APIRouter(tags=["operations"])

CHECK_SECONDS = 3.0
# The topic every deployment has; reading its end offsets proves the log answers.
PROBE_TOPIC = "control"


class Live(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready"] = "ready"
    checks: dict[str, Literal["ok"]]


@router.get("/healthz", summary="Liveness", responses=documented())
async def healthz() -> Live:
    return Live()


@router.get(
    "/readyz", summary="Readiness: Postgres, the log and every peer", responses=documented(503)
)
async def readyz(gw: GatewayDep) -> Ready:
    probes: dict[str, Awaitable[str | None]] = {
        "postgres": _answers(gw.store.ping()),
        "log": _answers(gw.event_log.end_offsets(PROBE_TOPIC)),
        **{name: gw.peers.health(name) for name in HEALTH_NAMES},
    }
    outcomes = await asyncio.gather(*(_in_time(p) for p in probes.values()))
    failed = {name: why for name, why in zip(probes, outcomes, strict=True) if why}
    if failed:
        detail = "; ".join(f"{name}: {why}" for name, why in failed.items())
        raise ProblemError(
            503, f"not ready: {detail}", kind="unavailable", headers={"Retry-After": "5"}
        )
    return Ready(checks=dict.fromkeys(probes, "ok"))


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"description": "Exposition format", "content": {"text/plain": {}}},
        **documented(),
    },
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


async def _answers(probe: Awaitable[object]) -> str | None:
    # Only the error's class: /readyz is public, and messages may name hosts or users.
    try:
        await probe
    except Exception as exc:
        return type(exc).__name__
    return None


async def _in_time(probe: Awaitable[str | None]) -> str | None:
    try:
        return await asyncio.wait_for(probe, CHECK_SECONDS)
    except TimeoutError:
        return "no answer in time"

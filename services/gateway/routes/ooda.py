"""The autonomous loop, for admins: its cycles (each observation and what came of it, with an
explanation in words) and decisions under /v1/ooda; approving or rejecting the pending ones and
setting its mode under /v1/admin/ooda. Served by the ooda-decide stage; the mode is the tunable
`ooda.mode`, changed through the control service like any other."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from hartonomous.v1 import control_pb2, ooda_pb2
from services.gateway import timestamps
from services.gateway.clients import (
    APPROVE,
    GET_CYCLE,
    LIST_CYCLES,
    LIST_DECISIONS,
    REJECT,
    SET_CONFIG,
)
from services.gateway.deps import Admin, GatewayDep
from services.gateway.problems import documented

router = APIRouter(prefix="/v1/ooda", tags=["ooda"])
admin_router = APIRouter(prefix="/v1/admin/ooda", tags=["ooda"])
MODE = "ooda.mode"

Id = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.:-]{1,128}$", description="An event id")]
Limit = Annotated[int, Query(ge=0, le=1000, description="0: 50")]
Status = Literal["pending", "approved", "declined", "rejected", "expired"]


class CycleSummary(BaseModel):
    cycle_id: str = Field(description="The id of the observation that opened it")
    metric: str = Field(examples=["latency_p95_ms{operation=Embed,service=inference}"])
    direction: str = Field(description="up or down")
    status: str = Field(
        description="observed (no playbook applied), pending, approved, declined, rejected, expired, "
        "acting, evaluating, improved, no change, harmful, inconclusive, rolling back, rolled back"
        " or failed"
    )
    observed_at: datetime | None
    playbook: str | None = Field(description="None until a playbook is chosen")
    knob: str | None
    explanation: str = Field(description="What happened and why, in one paragraph")


class CycleEvent(BaseModel):
    type: str = Field(examples=["ObservationMade"])
    event: dict[str, Any]


class CycleDetail(CycleSummary):
    events: list[CycleEvent] = Field(description="Every event of the cycle, in log order")


class Explanation(BaseModel):
    cycle_id: str
    status: str
    explanation: str


class Decision(BaseModel):
    decision_id: str
    cycle_id: str
    playbook: str
    knob: str
    from_value: str
    to_value: str
    risk: str = Field(description="low, medium or high")
    status: str = Field(description="pending, approved, declined, rejected or expired")
    reason: str = Field(description="Why the loop chose it, or why it waits for approval")
    evidence: str = Field(description="The observation, in one line")
    decided_at: datetime | None
    expires_at: datetime | None = Field(description="A pending decision lapses then")
    resolved_by: str | None
    resolution_reason: str | None


class ModeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["off", "advise", "auto"] = Field(
        description="off: observe only; advise: every decision waits for an admin; auto: "
        "low-risk changes are applied, medium and high wait"
    )
    reason: str = Field(min_length=1, max_length=2000, examples=["change freeze until Monday"])


class Mode(BaseModel):
    mode: str
    actor: str
    reason: str
    changed_at: datetime | None


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field("", max_length=2000, examples=["the batching change was a mistake"])


@router.get(
    "/cycles", summary="The loop's cycles, newest first", responses=documented(401, 403, 429)
)
async def list_cycles(
    gw: GatewayDep,
    _: Admin,
    limit: Limit = 0,
    acted_only: Annotated[bool, Query(description="Only cycles with a decision")] = False,
) -> list[CycleSummary]:
    request = ooda_pb2.ListCyclesRequest(limit=limit, acted_only=acted_only)
    reply = await gw.peers.unary(LIST_CYCLES, request)
    return [_summary(c) for c in reply.cycles]


@router.get(
    "/cycles/{cycle_id}",
    summary="One cycle with every event in it",
    responses=documented(401, 403, 404, 429),
)
async def get_cycle(cycle_id: Id, gw: GatewayDep, _: Admin) -> CycleDetail:
    found = await _cycle(gw, cycle_id)
    events = [CycleEvent(**e) for e in json.loads(found.document_json or "[]")]
    return CycleDetail(**_summary(found).model_dump(), events=events)


@router.get(
    "/cycles/{cycle_id}/explain",
    summary="Why the loop did what it did in one cycle, in words",
    responses=documented(401, 403, 404, 429),
)
async def explain(cycle_id: Id, gw: GatewayDep, _: Admin) -> Explanation:
    found = await _cycle(gw, cycle_id)
    return Explanation(cycle_id=found.cycle_id, status=found.status, explanation=found.explanation)


@router.get(
    "/decisions",
    summary="The loop's decisions, newest first",
    responses=documented(401, 403, 422, 429),
)
async def list_decisions(
    gw: GatewayDep, _: Admin, status: Status | None = None, limit: Limit = 0
) -> list[Decision]:
    request = ooda_pb2.ListDecisionsRequest(status=status or "", limit=limit)
    reply = await gw.peers.unary(LIST_DECISIONS, request)
    return [_decision(d) for d in reply.decisions]


@admin_router.post(
    "/decisions/{decision_id}/{verdict}",
    summary="Approve a pending decision (the loop applies it and judges it) or reject it",
    responses=documented(401, 403, 404, 409, 422, 429),
)
async def resolve(
    decision_id: Id,
    verdict: Literal["approve", "reject"],
    body: Resolution,
    gw: GatewayDep,
    admin: Admin,
) -> Decision:
    actor = f"user:{admin.key_id}"
    request = ooda_pb2.ResolveRequest(decision_id=decision_id, actor=actor, reason=body.reason)
    return _decision(await gw.peers.unary(APPROVE if verdict == "approve" else REJECT, request))


@admin_router.put(
    "/mode",
    summary="Turn the loop off, to advice only, or to auto (a ConfigChanged of ooda.mode)",
    responses=documented(401, 403, 422, 429),
)
async def put_mode(body: ModeChange, gw: GatewayDep, admin: Admin) -> Mode:
    request = control_pb2.SetConfigRequest(
        key=MODE, value=body.mode, reason=body.reason, actor=f"user:{admin.key_id}"
    )
    changed = await gw.peers.unary(SET_CONFIG, request)
    return Mode(
        mode=changed.value,
        actor=changed.actor,
        reason=changed.reason,
        changed_at=timestamps.from_proto(changed, "changed_at"),
    )


async def _cycle(gw: GatewayDep, cycle_id: str) -> ooda_pb2.Cycle:
    found: ooda_pb2.Cycle = await gw.peers.unary(
        GET_CYCLE, ooda_pb2.GetCycleRequest(cycle_id=cycle_id)
    )
    return found


def _summary(c: ooda_pb2.Cycle) -> CycleSummary:
    return CycleSummary(
        cycle_id=c.cycle_id,
        metric=c.metric,
        direction=c.direction,
        status=c.status,
        observed_at=timestamps.from_proto(c, "observed_at"),
        playbook=c.playbook or None,
        knob=c.knob or None,
        explanation=c.explanation,
    )


def _decision(d: ooda_pb2.Decision) -> Decision:
    return Decision(
        decision_id=d.decision_id,
        cycle_id=d.cycle_id,
        playbook=d.playbook,
        knob=d.knob,
        from_value=d.from_value,
        to_value=d.to_value,
        risk=d.risk,
        status=d.status,
        reason=d.reason,
        evidence=d.evidence,
        decided_at=timestamps.from_proto(d, "decided_at"),
        expires_at=timestamps.from_proto(d, "expires_at"),
        resolved_by=d.resolved_by or None,
        resolution_reason=d.resolution_reason or None,
    )

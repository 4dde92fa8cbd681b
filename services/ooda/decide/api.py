"""The hartonomous.v1.Ooda gRPC servicer: translates messages and errors, nothing more.
Approvals go through the decide stage itself (it knows, as of the log, whether a decision is
still pending); listings come from the read model."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.v1 import ooda_pb2 as pb
from services.ooda.domain.cycles import Cycle
from services.ooda.domain.decide import (
    DECISION_STATUSES,
    PENDING,
    Decide,
    DecisionConflict,
    DecisionNotFound,
)
from services.ooda.stages import StageRunner
from services.ooda.store import OodaStore, payload_json

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000


class InvalidRequest(ValueError):
    pass


_ERRORS = GrpcErrors(
    "ooda",
    {
        InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
        DecisionNotFound: grpc.StatusCode.NOT_FOUND,
        DecisionConflict: grpc.StatusCode.FAILED_PRECONDITION,
    },
)


class OodaApi:
    def __init__(self, runner: StageRunner, store: OodaStore) -> None:
        self._runner = runner
        self._store = store

    @property
    def _decide(self) -> Decide:
        stage = self._runner.stage
        assert isinstance(stage, Decide)
        return stage

    async def ListDecisions(
        self, request: pb.ListDecisionsRequest, context: Context
    ) -> pb.DecisionsReply:
        async with _ERRORS.scope(context, "ListDecisions"):
            status = request.status.strip()
            if status and status not in DECISION_STATUSES:
                raise InvalidRequest(
                    f"status is one of {', '.join(DECISION_STATUSES)}, not {status!r}"
                )
            limit = _limit(request.limit)
            # A status filter reads further back: the newest decisions may all be in another.
            ids = await self._store.recent("DecisionMade", limit if not status else MAX_LIMIT)
            found = [(c, self._status(c)) for c in await self._store.cycles(ids)]
            wanted = [(c, s) for c, s in found if not status or s == status]
            return pb.DecisionsReply(decisions=[decision(c, s) for c, s in wanted[:limit]])

    def _status(self, cycle: Cycle) -> str:
        """The cycle store's status, or this stage's where the store still says pending: the
        store is a projection of the log and can lag, for a moment, a resolve made here."""
        assert cycle.decision is not None
        stored = cycle.decision_status or cycle.decision.status
        made = self._decide.decisions.get(cycle.decision.decision_id)
        return made.status if stored == PENDING and made is not None else stored

    async def Approve(self, request: pb.ResolveRequest, context: Context) -> pb.Decision:
        async with _ERRORS.scope(context, "Approve"):
            return await self._resolve(request, approve=True)

    async def Reject(self, request: pb.ResolveRequest, context: Context) -> pb.Decision:
        async with _ERRORS.scope(context, "Reject"):
            return await self._resolve(request, approve=False)

    async def _resolve(self, request: pb.ResolveRequest, *, approve: bool) -> pb.Decision:
        if not request.actor.strip():
            raise InvalidRequest("an approval or rejection names its actor")
        decide, now = self._decide, datetime.now(UTC)
        resolve = decide.approve if approve else decide.reject
        outs = resolve(request.decision_id.strip(), request.actor, request.reason.strip(), now)
        await self._runner.emit(outs)
        made = decide.decisions[request.decision_id.strip()]
        cycle = await self._store.cycle(made.observation_id)
        if cycle is not None:
            reply = decision(cycle, made.status)
        else:
            reply = pb.Decision(decision_id=made.decision_id, status=made.status)
        reply.resolved_by = request.actor
        reply.resolution_reason = request.reason.strip()
        return reply

    async def ListCycles(self, request: pb.ListCyclesRequest, context: Context) -> pb.CyclesReply:
        async with _ERRORS.scope(context, "ListCycles"):
            kind = "DecisionMade" if request.acted_only else "ObservationMade"
            ids = await self._store.recent(kind, _limit(request.limit))
            return pb.CyclesReply(cycles=[cycle_message(c) for c in await self._store.cycles(ids)])

    async def GetCycle(self, request: pb.GetCycleRequest, context: Context) -> pb.Cycle:
        async with _ERRORS.scope(context, "GetCycle"):
            found = await self._store.cycle(request.cycle_id.strip())
            if found is None:
                raise DecisionNotFound(f"no cycle {request.cycle_id}")
            return cycle_message(found, whole=True)


def _limit(requested: int) -> int:
    if requested < 0 or requested > MAX_LIMIT:
        raise InvalidRequest(f"limit is 0 (the default, {DEFAULT_LIMIT}) to {MAX_LIMIT}")
    return requested or DEFAULT_LIMIT


def _stamp(moment: datetime | None) -> Timestamp | None:
    if moment is None:
        return None
    stamp = Timestamp()
    stamp.FromDatetime(moment)
    return stamp


def decision(cycle: Cycle, status: str) -> pb.Decision:
    d = cycle.decision
    assert d is not None
    o = cycle.observation
    r = cycle.resolution
    return pb.Decision(
        decision_id=d.decision_id,
        cycle_id=cycle.cycle_id,
        playbook=d.playbook,
        knob=d.knob,
        from_value=d.from_value,
        to_value=d.to_value,
        risk=d.risk,
        status=status,
        reason=d.reason,
        decided_at=_stamp(d.decided_at),
        expires_at=_stamp(d.expires_at),
        resolved_by=r.actor if r is not None else "",
        resolution_reason=r.reason if r is not None else "",
        evidence=f"{o.metric} {o.direction} {o.effect:+.0%}: {o.baseline:.4g} -> {o.current:.4g}"
        f" ({o.recent_samples} samples against {o.baseline_samples})",
    )


def cycle_message(cycle: Cycle, *, whole: bool = False) -> pb.Cycle:
    o, d = cycle.observation, cycle.decision
    message = pb.Cycle(
        cycle_id=cycle.cycle_id,
        metric=o.metric,
        direction=o.direction,
        status=cycle.status,
        observed_at=_stamp(o.observed_at),
        explanation=cycle.explain(),
        playbook=d.playbook if d is not None else "",
        knob=d.knob if d is not None else "",
    )
    if whole:
        message.document_json = json.dumps(
            [{"type": type(e).__name__, "event": json.loads(payload_json(e))} for e in cycle.events]
        )
    return message

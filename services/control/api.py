"""The hartonomous.v1.Control gRPC servicer: translates messages and errors, nothing more."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf.timestamp_pb2 import Timestamp

from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.tunables import Setting, Tunable, UnknownSetting
from hartonomous.v1 import control_pb2 as pb
from services.control import handlers
from services.control.domain import Change, InvalidRequest, source_of

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

_ERRORS = GrpcErrors(
    "control",
    {
        InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
        UnknownSetting: grpc.StatusCode.NOT_FOUND,
    },
)


class ControlApi:
    def __init__(self, deps: handlers.Deps) -> None:
        self._deps = deps

    async def GetConfig(self, request: pb.GetConfigRequest, context: Context) -> pb.ConfigReply:
        async with _ERRORS.scope(context, "GetConfig"):
            found = await handlers.settings(self._deps, request.key.strip())
            return pb.ConfigReply(settings=[setting(s) for s in found])

    async def SetConfig(self, request: pb.SetConfigRequest, context: Context) -> pb.Setting:
        async with _ERRORS.scope(context, "SetConfig"):
            changed = await handlers.set_config(
                self._deps, request.key.strip(), request.value, request.reason, request.actor
            )
            return setting(changed)

    async def ConfigHistory(
        self, request: pb.ConfigHistoryRequest, context: Context
    ) -> pb.ConfigHistoryReply:
        async with _ERRORS.scope(context, "ConfigHistory"):
            changes = await handlers.history(self._deps, request.key.strip(), request.limit)
            return pb.ConfigHistoryReply(changes=[change(c) for c in changes])


def tunable(declared: Tunable) -> pb.Tunable:
    return pb.Tunable(
        key=declared.key,
        kind=declared.kind.value,
        default_value=declared.text(declared.default),
        minimum=declared.minimum,
        maximum=declared.maximum,
        choices=declared.choices,
        risk=declared.risk.value,
        owner=declared.owner,
        group=declared.group,
        description=declared.description,
        autonomous=declared.autonomous,
    )


def setting(effective: Setting) -> pb.Setting:
    reply = pb.Setting(
        tunable=tunable(effective.tunable),
        value=effective.tunable.text(effective.value),
        source=source_of(effective.actor),
        actor=effective.actor or "",
        reason=effective.reason or "",
    )
    if effective.changed_at is not None:
        reply.changed_at.CopyFrom(_stamp(effective.changed_at))
    return reply


def change(made: Change) -> pb.ConfigChange:
    return pb.ConfigChange(
        key=made.key,
        old_value=made.old_value,
        new_value=made.new_value,
        actor=made.actor,
        reason=made.reason,
        changed_at=_stamp(made.changed_at),
        event_id=made.event_id,
    )


def _stamp(at: datetime) -> Timestamp:
    stamp = Timestamp()
    stamp.FromDatetime(at)
    return stamp

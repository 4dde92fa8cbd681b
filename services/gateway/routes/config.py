"""Admin: the platform's tunables, their effective values and history, and changes to them,
through the control service (which validates a change before it reaches the log)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from hartonomous.v1 import control_pb2
from services.gateway import timestamps
from services.gateway.clients import CONFIG_HISTORY, GET_CONFIG, SET_CONFIG
from services.gateway.deps import Admin, GatewayDep
from services.gateway.problems import documented

router = APIRouter(prefix="/v1/admin/config", tags=["config"])

Key = Annotated[
    str,
    Path(
        pattern=r"^[A-Za-z0-9_.-]{1,128}$",
        examples=["inference.batch.max_wait_ms"],
        description="A tunable's key",
    ),
]


class Setting(BaseModel):
    key: str
    value: str = Field(description="The effective value, as text")
    default: str
    kind: str = Field(description="int, float, bool or choice")
    minimum: float | None
    maximum: float | None
    choices: list[str]
    risk: str = Field(description="low, medium or high: the loop applies only low by itself")
    owner: str = Field(description='The service that holds it ("*": every process)')
    group: str = Field(description="Coupled knobs: the loop changes one of a group at a time")
    description: str
    autonomous: bool = Field(description="False: only an operator changes it")
    source: str = Field(description="default, operator or ooda")
    actor: str | None
    reason: str | None
    changed_at: datetime | None


class ConfigChange(BaseModel):
    key: str
    old_value: str | None
    new_value: str
    actor: str
    reason: str
    changed_at: datetime | None
    event_id: str


class ConfigUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str | bool | int | float = Field(examples=[250], description="The new value")
    reason: str = Field(min_length=1, max_length=2000, examples=["clients batch more slowly"])


@router.get(
    "", summary="Every tunable and its effective value", responses=documented(401, 403, 429)
)
async def get_config(gw: GatewayDep, _: Admin) -> list[Setting]:
    reply = await gw.peers.unary(GET_CONFIG, control_pb2.GetConfigRequest())
    return [_setting(s) for s in reply.settings]


@router.get(
    "/{key}",
    summary="One tunable and its effective value",
    responses=documented(401, 403, 404, 429),
)
async def get_one(key: Key, gw: GatewayDep, _: Admin) -> Setting:
    reply = await gw.peers.unary(GET_CONFIG, control_pb2.GetConfigRequest(key=key))
    return _setting(reply.settings[0])


@router.get(
    "/{key}/history",
    summary="A tunable's changes, newest first",
    responses=documented(401, 403, 404, 422, 429),
)
async def history(
    key: Key,
    gw: GatewayDep,
    _: Admin,
    limit: Annotated[int, Query(ge=0, le=1000, description="0: 100")] = 0,
) -> list[ConfigChange]:
    request = control_pb2.ConfigHistoryRequest(key=key, limit=limit)
    reply = await gw.peers.unary(CONFIG_HISTORY, request)
    return [
        ConfigChange(
            key=c.key,
            old_value=c.old_value if c.HasField("old_value") else None,
            new_value=c.new_value,
            actor=c.actor,
            reason=c.reason,
            changed_at=timestamps.from_proto(c, "changed_at"),
            event_id=c.event_id,
        )
        for c in reply.changes
    ]


@router.put(
    "/{key}",
    summary="Change a tunable (a ConfigChanged on the control topic, applied by every replica)",
    responses=documented(401, 403, 404, 422, 429),
)
async def put_config(key: Key, body: ConfigUpdate, gw: GatewayDep, admin: Admin) -> Setting:
    value = str(body.value).lower() if isinstance(body.value, bool) else str(body.value)
    request = control_pb2.SetConfigRequest(
        key=key, value=value, reason=body.reason, actor=f"user:{admin.key_id}"
    )
    return _setting(await gw.peers.unary(SET_CONFIG, request))


def _setting(s: control_pb2.Setting) -> Setting:
    t = s.tunable
    return Setting(
        key=t.key,
        value=s.value,
        default=t.default_value,
        kind=t.kind,
        minimum=t.minimum if t.HasField("minimum") else None,
        maximum=t.maximum if t.HasField("maximum") else None,
        choices=list(t.choices),
        risk=t.risk,
        owner=t.owner,
        group=t.group,
        description=t.description,
        autonomous=t.autonomous,
        source=s.source,
        actor=s.actor or None,
        reason=s.reason or None,
        changed_at=timestamps.from_proto(s, "changed_at"),
    )

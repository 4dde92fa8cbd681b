"""Schema `ooda` in Postgres: the read model of the loop, a projection of the `ooda.*` topics
and of `control` (an explanation names the change that preceded an observation).

Every event is one row keyed by its event id (a second copy changes nothing), with its cycle
(the envelope's correlation id: the observation id for the loop's events) and its payload as
JSON; a cycle is assembled from its rows (domain/cycles.py). Rebuildable by replay."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, get_type_hints

import asyncpg

from hartonomous.events import Event
from hartonomous.events.payloads import (
    EVENT_PAYLOADS,
    ConfigChanged,
    Payload,
    from_avro,
    to_avro,
)
from services.ooda.domain.cycles import Cycle, PriorChange

SCHEMA = "ooda"
_SETUP_LOCK = 0x4F4F_4441  # advisory lock: replicas starting together create the schema once
CAUSE_WINDOW = timedelta(minutes=15)  # a knob change this long before an observation is named

_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.events (
    event_id text primary key,
    cycle_id text not null,
    event_type text not null,
    knob text,
    payload jsonb not null,
    occurred_at timestamptz not null);
create index if not exists events_by_cycle on {SCHEMA}.events (cycle_id, occurred_at);
create index if not exists events_by_type on {SCHEMA}.events (event_type, occurred_at desc);
create index if not exists changes_by_knob on {SCHEMA}.events (knob, occurred_at desc)
    where event_type = 'ConfigChanged';
"""


def payload_json(payload: Payload) -> str:
    """JSON of a payload; a non-finite number (the effect of a change from a zero baseline)
    as text, which JSON has no token for."""
    values = {
        k: str(v) if isinstance(v, float) and not math.isfinite(v) else v
        for k, v in to_avro(payload).items()
    }
    return json.dumps(values, default=lambda v: v.isoformat())


def payload_of(event_type: str, document: str | dict[str, Any]) -> Payload:
    cls = EVENT_PAYLOADS[event_type]
    values = json.loads(document) if isinstance(document, str) else dict(document)
    for name, hint in get_type_hints(cls).items():
        kinds = (hint, *getattr(hint, "__args__", ()))
        if values.get(name) is None:
            continue
        if datetime in kinds:
            values[name] = datetime.fromisoformat(values[name])
        elif float in kinds and isinstance(values[name], str):
            values[name] = float(values[name])
    return from_avro(cls, values)


class OodaStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def setup(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _SETUP_LOCK)
            await conn.execute(_DDL)

    async def record(self, _: OodaStore, event: Event[Payload]) -> None:
        """The projection's handler: one row per event (a copy changes nothing)."""
        payload = event.payload
        knob = getattr(payload, "knob", None) or getattr(payload, "key", None)
        await self._pool.execute(
            f"insert into {SCHEMA}.events values ($1, $2, $3, $4, $5::jsonb, $6)"
            " on conflict (event_id) do nothing",
            event.envelope.event_id,
            event.envelope.correlation_id,
            event.event_type,
            knob,
            payload_json(payload),
            event.envelope.occurred_at,
        )

    async def cycle(self, cycle_id: str) -> Cycle | None:
        found = await self.cycles([cycle_id])
        return found[0] if found else None

    async def cycles(self, cycle_ids: Sequence[str]) -> list[Cycle]:
        """The cycles with these ids (those that exist), in the order given."""
        rows = await self._pool.fetch(
            f"select cycle_id, event_type, payload from {SCHEMA}.events"
            " where cycle_id = any($1) and event_type <> 'ConfigChanged'"
            " order by occurred_at, event_id",
            list(cycle_ids),
        )
        events: dict[str, list[Payload]] = {}
        for row in rows:
            events.setdefault(row["cycle_id"], []).append(
                payload_of(row["event_type"], row["payload"])
            )
        found = []
        for cycle_id in cycle_ids:
            cycle = Cycle.of(events.get(cycle_id, []))
            if cycle is not None:
                cycle.cause = await self._cause(cycle)
                found.append(cycle)
        return found

    async def recent(self, event_type: str, limit: int) -> list[str]:
        """The cycles of the newest `limit` events of a type, newest first."""
        rows = await self._pool.fetch(
            f"select cycle_id from {SCHEMA}.events where event_type = $1"
            " order by occurred_at desc, event_id desc limit $2",
            event_type,
            limit,
        )
        return [row["cycle_id"] for row in rows]

    async def _cause(self, cycle: Cycle) -> PriorChange | None:
        """The last change of the chosen knob in the quarter hour before the change began."""
        knob = cycle.decision.knob if cycle.decision is not None else None
        if knob is None:
            return None
        since = cycle.observation.since
        row = await self._pool.fetchrow(
            f"select payload, occurred_at from {SCHEMA}.events"
            " where event_type = 'ConfigChanged' and knob = $1"
            " and occurred_at <= $2 and occurred_at >= $3"
            " order by occurred_at desc limit 1",
            knob,
            since,
            since - CAUSE_WINDOW,
        )
        if row is None:
            return None
        change = payload_of("ConfigChanged", row["payload"])
        assert isinstance(change, ConfigChanged)
        return PriorChange(change, row["occurred_at"])

"""What the five stages share: each is a pure state machine fed the events of its topics (with
the time each happened) and the clock, answering with the events it publishes.

A stage also consumes what it publishes, so one rebuilt by replaying its topics knows what it
already did. What it emits it applies to its own state at once and skips when the same event
comes back through the log, so nothing is decided twice in the gap between publishing and
reading back. Every emitted event's id is derived from its cause, and a stage is told which of
its events the log already holds (`recall`) before a replay: a replay publishes only what was
never published (what a crash cut short), and redelivered events are ignored."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from hartonomous.events.payloads import Payload, TelemetryRecorded


@dataclass(frozen=True)
class Out:
    payload: Payload
    event_id: str
    cycle: str  # the observation id: every event of one cycle carries it as correlation id


class Stage:
    produces: ClassVar[tuple[type[Payload], ...]] = ()

    def __init__(self) -> None:
        self._seen: set[str] = set()  # events handled (telemetry windows aside: too many)
        self._published: set[str] = set()  # own events the log holds

    def recall(self, event_ids: Iterable[str]) -> None:
        """These of the stage's own events are in the log already: never publish them again."""
        self._published.update(event_ids)

    def receive(self, payload: Payload, event_id: str, at: datetime) -> list[Out]:
        """Handle one consumed event; returns what to publish."""
        if not isinstance(payload, TelemetryRecorded):
            if event_id in self._seen:
                return []
            self._seen.add(event_id)
        if isinstance(payload, self.produces):
            self._published.add(event_id)
        return self._absorb(self.on(payload, event_id, at), at)

    def tick(self, now: datetime) -> list[Out]:
        """What the passing of time alone leads to (expiries, deadlines, evaluations)."""
        return self._absorb(self.due(now), now)

    def on(self, payload: Payload, event_id: str, at: datetime) -> list[Out]:
        raise NotImplementedError

    def due(self, now: datetime) -> list[Out]:
        return []

    def _absorb(self, outs: list[Out], at: datetime) -> list[Out]:
        """Apply the stage's own new events to its state; the ones the log lacks are returned."""
        fresh = []
        for out in outs:
            if out.event_id in self._seen:
                continue
            self._seen.add(out.event_id)
            self.on(out.payload, out.event_id, at)
            if out.event_id not in self._published:
                self._published.add(out.event_id)
                fresh.append(out)
        return fresh

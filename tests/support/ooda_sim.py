"""The autonomous loop on a virtual clock: the five stages' real domain code, wired the way
their topics wire them, around a simulated platform whose Embed latency follows the batching
wait (plus seeded ±15% jitter and whatever disturbance a scenario adds).

Every event goes onto one in-memory log (what `ooda.*`, `control` and `telemetry` hold) and to
every stage, in order; the simulated replicas apply a ConfigChanged at their next window and
report the values they hold in it, as the real telemetry emitter does."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

from hartonomous.events.ids import named_event_id
from hartonomous.events.payloads import (
    ConfigChanged,
    GaugeSample,
    OperationWindow,
    Payload,
    TelemetryRecorded,
)
from hartonomous.tunables import catalog
from services.inference.tunables import MAX_BATCH_SIZE, MAX_WAIT_MS
from services.ooda.domain.act import Act
from services.ooda.domain.decide import Decide
from services.ooda.domain.detect import Tuning
from services.ooda.domain.learn import Learn
from services.ooda.domain.observe import Observe
from services.ooda.domain.orient import Orient
from services.ooda.domain.playbooks import EMBED, PLAYBOOKS, Playbook
from services.ooda.domain.stage import Out, Stage

START = datetime(2026, 12, 1, tzinfo=UTC)
INTERVAL_S = 5.0
JITTER = 0.15
P = TypeVar("P", bound=Payload)


def embed_window(
    instance: str, end: datetime, p95: float, queue: float, tunables: dict[str, str]
) -> TelemetryRecorded:
    """An inference process's telemetry window: its Embed latencies and its queue depth."""
    return TelemetryRecorded(
        service="inference",
        instance=instance,
        window_start=end - timedelta(seconds=INTERVAL_S),
        window_end=end,
        operations=[
            OperationWindow(
                operation=EMBED,
                requests=200,
                errors=0,
                p50_ms=p95 * 0.6,
                p95_ms=p95,
                p99_ms=p95 * 1.3,
            )
        ],
        gauges=[GaugeSample(name="inference_queue_depth", value=queue)],
        tunables=tunables,
    )


@dataclass(frozen=True)
class Logged:
    payload: Payload
    event_id: str
    at: datetime


def embed_p95_ms(wait_ms: float) -> float:
    """The simulated platform: Embed p95 grows with the time texts wait for a batch."""
    return 40.0 + 0.7 * wait_ms


@dataclass
class Replica:
    instance: str
    applies_changes: bool = True
    knobs: dict[str, str] = field(default_factory=dict)


class Simulation:
    def __init__(
        self,
        seed: int,
        *,
        playbooks: Sequence[Playbook] = PLAYBOOKS,
        replicas: int = 2,
        settings: dict[str, str] | None = None,
        tuning: Tuning | None = None,
        stages: Sequence[str] = ("observe", "orient", "decide", "act", "learn"),
    ) -> None:
        self.rng = random.Random(seed)
        self.tunables = catalog()
        self.now = START
        self.log: list[Logged] = []
        self.playbooks = playbooks
        self.tuning = tuning
        self.stages: dict[str, Stage] = {name: self._stage(name) for name in stages}
        defaults = {k: t.text(t.default) for k, t in self.tunables.items()}
        self.replicas = [
            Replica(f"inference-{i}", knobs={k: defaults[k] for k in (MAX_WAIT_MS, MAX_BATCH_SIZE)})
            for i in range(replicas)
        ]
        self.disturbance: Callable[[float], float] = lambda t: 1.0
        self.blackout: Callable[[float], bool] = lambda t: False
        self.queue_factor = 1.0
        self._pending: list[ConfigChanged] = []
        for key, value in (settings or {}).items():
            self.operator_sets(key, value, actor="user:setup")

    def _stage(self, name: str) -> Stage:
        if name == "observe":
            return Observe(self.tuning)
        if name == "orient":
            return Orient(self.tunables, self.playbooks)
        if name == "decide":
            return Decide(self.tunables)
        if name == "act":
            return Act(self.tunables)
        return Learn(self.playbooks)

    # -- the log ----------------------------------------------------------------------------

    def publish(self, payload: Payload, event_id: str) -> None:
        queue = [Out(payload, event_id, event_id)]
        while queue:
            out = queue.pop(0)
            self.log.append(Logged(out.payload, out.event_id, self.now))
            if isinstance(out.payload, ConfigChanged):
                self._pending.append(out.payload)
            for stage in self.stages.values():
                queue.extend(stage.receive(out.payload, out.event_id, self.now))

    def restart(self, name: str) -> Stage:
        """A new `name` stage rebuilt from the log, as a restarted service is: told which of its
        events the log holds, then fed the log; it publishes only what was never published."""
        stage = self.stages[name] = self._stage(name)
        stage.recall(e.event_id for e in self.log if isinstance(e.payload, stage.produces))
        for logged in list(self.log):
            self._emit(stage.receive(logged.payload, logged.event_id, logged.at))
        return stage

    def _emit(self, outs: list[Out]) -> None:
        for out in outs:
            self.publish(out.payload, out.event_id)

    def events(self, kind: type[P]) -> list[P]:
        return [e.payload for e in self.log if isinstance(e.payload, kind)]

    def logged(self, kind: type[Payload]) -> list[Logged]:
        return [e for e in self.log if isinstance(e.payload, kind)]

    @property
    def seconds(self) -> float:
        return (self.now - START).total_seconds()

    # -- people -----------------------------------------------------------------------------

    def operator_sets(self, key: str, value: str, actor: str = "user:k1") -> None:
        tunable = self.tunables[key]
        old = self._effective(key)
        change = ConfigChanged(
            key=key,
            old_value=old,
            new_value=tunable.text(tunable.parse(value)),
            reason="",
            actor=actor,
        )
        self.publish(change, named_event_id(int(self.seconds * 1000), f"set:{key}:{len(self.log)}"))

    def _effective(self, key: str) -> str:
        for logged in reversed(self.log):
            if isinstance(logged.payload, ConfigChanged) and logged.payload.key == key:
                return logged.payload.new_value
        tunable = self.tunables[key]
        return tunable.text(tunable.default)

    def approve(self, decision_id: str) -> None:
        decide = self.stages["decide"]
        assert isinstance(decide, Decide)
        self._emit(decide.approve(decision_id, "user:k1", "looks right", self.now))

    # -- time -------------------------------------------------------------------------------

    def run(self, seconds: float) -> None:
        end = self.now + timedelta(seconds=seconds)
        while self.now < end:
            self.now += timedelta(seconds=INTERVAL_S)
            self._apply_changes()
            for replica in self.replicas:
                self.publish(self._window(replica), self._window_id(replica))
            for stage in self.stages.values():
                self._emit(stage.tick(self.now))

    def _apply_changes(self) -> None:
        for change in self._pending:
            for replica in self.replicas:
                if replica.applies_changes and change.key in replica.knobs:
                    replica.knobs[change.key] = change.new_value
        self._pending.clear()

    def _window_id(self, replica: Replica) -> str:
        return named_event_id(int(self.seconds * 1000), f"window:{replica.instance}:{self.seconds}")

    def _window(self, replica: Replica) -> TelemetryRecorded:
        t = self.seconds
        jitter = 1 + self.rng.uniform(-JITTER, JITTER)
        p95 = embed_p95_ms(float(replica.knobs[MAX_WAIT_MS])) * self.disturbance(t) * jitter
        if self.blackout(t):
            p95 = float("nan")  # the window measured nothing usable
        queue = 2.0 * self.queue_factor * (1 + self.rng.uniform(-JITTER, JITTER))
        return embed_window(replica.instance, self.now, p95, queue, dict(replica.knobs))

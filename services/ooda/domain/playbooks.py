"""Playbooks: what the loop may do about an observation, declared as data.

A playbook names the change it reacts to (`trigger`: a metric moving one way), the knob it
turns and how (`change`, a function of the knob's current value and history), what it expects
to happen (`expect`: a metric moving the other way by at least a minimum effect), what must not
get worse meanwhile (`guardrails`), how long to wait before judging (`evaluation_s`), how long
to leave the knob alone after acting (`cooldown_s`), and its prior belief in success (a Beta
distribution that each outcome updates).

Writing one: add a `Playbook(...)` to PLAYBOOKS (or pass your own list to the orient stage);
`tests/unit/ooda/test_playbooks.py` checks that every knob it names is a tunable the loop may
turn and every proposal stays within the knob's bounds.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from hartonomous.tunables import Kind, Risk, Tunable, Value
from services.ooda.domain.knobs import KnobChange
from services.ooda.domain.metrics import Metric

EMBED = "hartonomous.v1.Inference/Embed"
SEARCH = "hartonomous.v1.Search/Search"


class Direction(enum.StrEnum):
    UP = "up"
    DOWN = "down"

    @property
    def opposite(self) -> Direction:
        return Direction.DOWN if self is Direction.UP else Direction.UP


@dataclass(frozen=True)
class Signal:
    """A metric (its name, and the labels it must carry) moving one way."""

    metric: str
    direction: Direction
    labels: Mapping[str, str] = field(default_factory=dict)
    min_effect: float = 0.15  # the smallest relative change that counts
    # The level the metric must have reached, in its own unit: a rise from nothing to a
    # handful (a lag of 3 records: +inf%) is no problem to solve.
    at_least: float = 0.0

    def matches(self, metric: Metric) -> bool:
        """The metric is this one, with every label given ("*": any value, but present)."""
        if metric.name != self.metric:
            return False
        for name, wanted in self.labels.items():
            found = metric.label(name)
            if found is None or wanted not in ("*", found):
                return False
        return True

    def bound(self, to: Metric) -> Metric:
        """This signal's metric, its "*" labels taken from `to` (what triggered the play)."""
        labels = {k: (to.label(k) or "") if v == "*" else v for k, v in self.labels.items()}
        return Metric.of(self.metric, **labels)


LAG_WORTH_A_PLAY = 1000.0  # records behind: less is a projection catching up within a poll


@dataclass(frozen=True)
class Scale:
    """Multiply the current value (clamped to the knob's bounds; integers rounded)."""

    factor: float


@dataclass(frozen=True)
class SetTo:
    value: str


@dataclass(frozen=True)
class Restore:
    """The value the knob had before its last change, if that change is at most `within_s`
    old and was not the loop's own: the last good value, as SQL Server's automatic plan
    correction forces the last good plan."""

    within_s: float = 900.0


ChangeRule = Scale | SetTo | Restore


@dataclass(frozen=True)
class Playbook:
    name: str
    description: str
    trigger: Signal
    knob: str  # a tunable key; "{group}" is filled from the trigger's `group` label
    change: ChangeRule
    expect: Signal
    guardrails: tuple[Signal, ...] = ()
    evaluation_s: float = 120.0
    cooldown_s: float = 300.0
    prior: tuple[float, float] = (1.0, 1.0)
    risk: Risk | None = None  # None: the knob's own risk class
    quiet_s: float = 0.0
    """Propose only when the knob has not changed for this long: a regression right after a
    change is for restoring the last good value, not for tuning on top of it."""

    def knob_for(self, metric: Metric) -> str:
        return self.knob.replace("{group}", metric.label("group") or "")


def propose(
    playbook: Playbook, tunable: Tunable, current: Value, last: KnobChange | None, now: datetime
) -> str | None:
    """The value the playbook would set, as text; None when it has nothing to propose (the
    value would not change, there is no recent change to restore, or the knob changed less
    than the playbook's `quiet_s` ago)."""
    if last is not None and (now - last.at).total_seconds() < playbook.quiet_s:
        return None
    rule = playbook.change
    if isinstance(rule, SetTo):
        proposed = tunable.text(tunable.parse(rule.value))
    elif isinstance(rule, Restore):
        if (
            last is None
            or last.old_value is None
            or last.by_loop  # the loop's own change is judged by learn and rolled back there
            or (now - last.at).total_seconds() > rule.within_s
        ):
            return None
        proposed = tunable.text(tunable.parse(last.old_value))
    else:
        assert not isinstance(current, bool | str), f"{tunable.key} is not a number"
        value: float = current * rule.factor
        if tunable.minimum is not None:
            value = max(value, tunable.minimum)
        if tunable.maximum is not None:
            value = min(value, tunable.maximum)
        if tunable.kind is Kind.INT:
            value = float(round(value))
        proposed = tunable.text(int(value) if tunable.kind is Kind.INT else value)
    return None if proposed == tunable.text(current) else proposed


PLAYBOOKS: tuple[Playbook, ...] = (
    Playbook(
        name="restore-batching",
        description="Embed latency rose soon after the batching wait changed: restore the old"
        " wait (the last good value)",
        trigger=Signal("latency_p95_ms", Direction.UP, {"operation": EMBED}),
        knob="inference.batch.max_wait_ms",
        change=Restore(),
        expect=Signal("latency_p95_ms", Direction.DOWN, {"operation": EMBED}),
        guardrails=(Signal("error_rate", Direction.UP, {"operation": EMBED}, min_effect=0.5),),
        prior=(3.0, 1.0),
    ),
    Playbook(
        name="shorter-batching-wait",
        description="Embed latency rose while texts wait for batches: halve the batching wait",
        trigger=Signal("latency_p95_ms", Direction.UP, {"operation": EMBED}),
        knob="inference.batch.max_wait_ms",
        change=Scale(0.5),
        expect=Signal("latency_p95_ms", Direction.DOWN, {"operation": EMBED}),
        guardrails=(Signal("inference_queue_depth", Direction.UP, min_effect=1.0),),
        quiet_s=900.0,
    ),
    Playbook(
        name="bigger-batches",
        description="Texts queue up for the model: allow batches twice as large",
        trigger=Signal("inference_queue_depth", Direction.UP, min_effect=0.5),
        knob="inference.batch.max_batch_size",
        change=Scale(2.0),
        expect=Signal("inference_queue_depth", Direction.DOWN, min_effect=0.3),
        guardrails=(Signal("latency_p95_ms", Direction.UP, {"operation": EMBED}, min_effect=0.3),),
    ),
    Playbook(
        name="query-cache",
        description="Searches repeat their queries: keep recent query vectors in a cache",
        trigger=Signal("search_repeated_queries", Direction.UP, min_effect=0.5),
        knob="search.query_cache.size",
        change=SetTo("1024"),
        expect=Signal("latency_p50_ms", Direction.DOWN, {"operation": SEARCH}, min_effect=0.1),
        guardrails=(Signal("error_rate", Direction.UP, {"operation": SEARCH}, min_effect=0.5),),
    ),
    Playbook(
        name="bigger-consumer-batches",
        description="A projection falls behind the log: apply twice as many records per batch",
        trigger=Signal(
            "consumer_lag", Direction.UP, {"group": "*"}, min_effect=1.0, at_least=LAG_WORTH_A_PLAY
        ),
        knob="{group}.consumer.max_batch",
        change=Scale(2.0),
        expect=Signal("consumer_lag", Direction.DOWN, {"group": "*"}, min_effect=0.3),
    ),
    Playbook(
        name="earlier-compaction",
        description="Dense search slowed while dead slots pile up: compact at half the threshold",
        trigger=Signal("latency_p50_ms", Direction.UP, {"operation": SEARCH}),
        knob="search.compaction.min_dead",
        change=Scale(0.5),
        expect=Signal("latency_p50_ms", Direction.DOWN, {"operation": SEARCH}),
        guardrails=(Signal("error_rate", Direction.UP, {"operation": SEARCH}, min_effect=0.5),),
    ),
)

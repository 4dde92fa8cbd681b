"""learn: a confirmed action → its outcome, judged with numbers, and the playbook's prior
updated as an event.

Once the action's evaluation window (the playbook's `evaluation_s`) has passed since its
read-back was confirmed, the expected metric's samples in that window are compared with those
from the change's onset up to the action (at most BEFORE_S of them): a two-sided Mann-Whitney
test and the relative change of the medians against the playbook's pre-declared minimum
effect. Fewer than MIN_BEFORE or MIN_AFTER samples (a blackout) → inconclusive, never a pass
or a fail. The guardrails are judged the same way. The verdict:

- improved: the metric moved the expected way by at least the minimum effect (p < ALPHA);
- harmful: it moved the other way by at least that much, or a guardrail regressed → the
  action is rolled back (by act) and the playbook suspended for its cooldown;
- no change: anything else with enough samples; inconclusive: not enough samples.

The prior: Beta(a+1, b) after improved, Beta(a, b+1) after harmful or no change, unchanged
after inconclusive; always published, so a replay of `ooda.*` rebuilds the same priors.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from hartonomous.events.ids import derived_event_id
from hartonomous.events.payloads import (
    ActionConfirmed,
    ActionStarted,
    DecisionMade,
    HypothesesProposed,
    Hypothesis,
    ObservationMade,
    OutcomeEvaluated,
    Payload,
    PriorUpdated,
    TelemetryRecorded,
)
from services.ooda.domain.metrics import Metric, samples_of
from services.ooda.domain.playbooks import PLAYBOOKS, Playbook
from services.ooda.domain.stage import Out, Stage
from services.ooda.domain.stats import mann_whitney_p, median

IMPROVED, NO_CHANGE, HARMFUL, INCONCLUSIVE = "improved", "no change", "harmful", "inconclusive"
MIN_BEFORE = 3
MIN_AFTER = 12
ALPHA = 0.05
BEFORE_S = 900.0
KEEP_S = 2 * 3600.0  # how much telemetry is kept to judge with


@dataclass(frozen=True)
class Comparison:
    before: list[float]
    after: list[float]

    @property
    def enough(self) -> bool:
        return len(self.before) >= MIN_BEFORE and len(self.after) >= MIN_AFTER

    @property
    def effect(self) -> float:
        """The relative change of the median (infinite from a zero median to a non-zero one)."""
        b, a = median(self.before), median(self.after)
        if b == 0:
            return 0.0 if a == 0 else float("inf") if a > 0 else float("-inf")
        return (a - b) / abs(b)

    @property
    def p_value(self) -> float:
        return mann_whitney_p(self.before, self.after)

    def moved(self, direction: str, min_effect: float) -> bool:
        """A significant move of at least `min_effect` in `direction`."""
        effect = self.effect if direction == "up" else -self.effect
        return effect >= min_effect and self.p_value < ALPHA


@dataclass
class _Evaluation:
    started: ActionStarted
    decision: DecisionMade
    hypothesis: Hypothesis
    observation: ObservationMade
    confirmed_at: datetime


class Learn(Stage):
    produces = (OutcomeEvaluated, PriorUpdated)

    def __init__(self, playbooks: Sequence[Playbook] = PLAYBOOKS) -> None:
        super().__init__()
        self.playbooks = {p.name: p for p in playbooks}
        self.priors: dict[str, tuple[float, float]] = {}
        self._samples: dict[Metric, deque[tuple[datetime, float]]] = {}
        self._observations: dict[str, ObservationMade] = {}
        self._hypotheses: dict[str, Hypothesis] = {}
        self._decisions: dict[str, DecisionMade] = {}
        self._started: dict[str, ActionStarted] = {}
        self._waiting: dict[str, _Evaluation] = {}  # action id -> its evaluation to come

    def prior(self, playbook: str) -> tuple[float, float]:
        known = self.playbooks.get(playbook)
        return self.priors.get(playbook, known.prior if known is not None else (1.0, 1.0))

    def on(self, payload: Payload, event_id: str, at: datetime) -> list[Out]:
        if isinstance(payload, TelemetryRecorded):
            self._record(payload, event_id)
        elif isinstance(payload, ObservationMade):
            self._observations[payload.observation_id] = payload
        elif isinstance(payload, HypothesesProposed):
            self._hypotheses.update((h.hypothesis_id, h) for h in payload.candidates)
        elif isinstance(payload, DecisionMade):
            self._decisions[payload.decision_id] = payload
        elif isinstance(payload, ActionStarted) and payload.rollback_of is None:
            self._started[payload.action_id] = payload
        elif isinstance(payload, ActionConfirmed):
            self._expect(payload)
        elif isinstance(payload, OutcomeEvaluated):
            self._waiting.pop(payload.action_id, None)
        elif isinstance(payload, PriorUpdated):
            self.priors[payload.playbook] = (payload.alpha, payload.beta)
        return []

    def due(self, now: datetime) -> list[Out]:
        found: list[Out] = []
        for evaluation in list(self._waiting.values()):
            ends = evaluation.confirmed_at + timedelta(seconds=evaluation.hypothesis.evaluation_s)
            if now >= ends:
                found.extend(self._evaluate(evaluation, ends, now))
        return found

    def _record(self, window: TelemetryRecorded, event_id: str) -> None:
        horizon = window.window_end - timedelta(seconds=KEEP_S)
        for sample in samples_of(window, event_id):
            kept = self._samples.setdefault(sample.metric, deque())
            kept.append((sample.at, sample.value))
            while kept and kept[0][0] < horizon:
                kept.popleft()

    def _expect(self, confirmed: ActionConfirmed) -> None:
        started = self._started.get(confirmed.action_id)
        if started is None:
            return  # a rollback: its own outcome is not judged
        decision = self._decisions.get(started.decision_id)
        hypothesis = self._hypotheses.get(decision.hypothesis_id) if decision else None
        observation = self._observations.get(decision.observation_id) if decision else None
        if decision is None or hypothesis is None or observation is None:
            return
        self._waiting[started.action_id] = _Evaluation(
            started, decision, hypothesis, observation, confirmed.confirmed_at
        )

    def _compare(self, metric: str, evaluation: _Evaluation, ends: datetime) -> Comparison:
        pattern = Metric.parse(metric)
        started = evaluation.started.started_at
        since = max(evaluation.observation.since, started - timedelta(seconds=BEFORE_S))
        before: list[float] = []
        after: list[float] = []
        for found, kept in self._samples.items():
            if not pattern.covers(found):
                continue
            before.extend(v for t, v in kept if since <= t <= started)
            after.extend(v for t, v in kept if evaluation.confirmed_at < t <= ends)
        return Comparison(before, after)

    def _evaluate(self, evaluation: _Evaluation, ends: datetime, now: datetime) -> list[Out]:
        hypothesis, started = evaluation.hypothesis, evaluation.started
        expected = self._compare(hypothesis.expect_metric, evaluation, ends)
        breaches = []
        for guardrail in hypothesis.guardrails:
            compared = self._compare(guardrail.metric, evaluation, ends)
            if compared.enough and compared.moved(guardrail.worse, guardrail.max_effect):
                breaches.append(f"{guardrail.metric} {guardrail.worse} {compared.effect:+.0%}")
        direction = hypothesis.expect_direction
        wrong_way = "up" if direction == "down" else "down"
        if not expected.enough:
            verdict = INCONCLUSIVE
        elif breaches or expected.moved(wrong_way, hypothesis.min_effect):
            verdict = HARMFUL
        elif expected.moved(direction, hypothesis.min_effect):
            verdict = IMPROVED
        else:
            verdict = NO_CHANGE
        outcome_id = derived_event_id(started.action_id, "outcome")
        outcome = OutcomeEvaluated(
            outcome_id=outcome_id,
            action_id=started.action_id,
            decision_id=started.decision_id,
            playbook=hypothesis.playbook,
            knob=started.knob,
            verdict=verdict,
            metric=hypothesis.expect_metric,
            before_median=median(expected.before) if expected.before else None,
            after_median=median(expected.after) if expected.after else None,
            effect=expected.effect if expected.before and expected.after else None,
            before_samples=len(expected.before),
            after_samples=len(expected.after),
            p_value=expected.p_value if expected.before and expected.after else None,
            baseline=evaluation.observation.baseline,
            guardrail_breaches=breaches,
            rolled_back=verdict == HARMFUL,
            evaluated_at=now,
        )
        alpha, beta = self.prior(hypothesis.playbook)
        if verdict == IMPROVED:
            alpha += 1
        elif verdict in (HARMFUL, NO_CHANGE):
            beta += 1
        prior = PriorUpdated(
            playbook=hypothesis.playbook,
            alpha=alpha,
            beta=beta,
            outcome_id=outcome_id,
            suspended_until=now + timedelta(seconds=hypothesis.cooldown_s)
            if verdict == HARMFUL
            else None,
            updated_at=now,
        )
        cycle = evaluation.decision.observation_id
        return [
            Out(outcome, outcome_id, cycle),
            Out(prior, derived_event_id(outcome_id, "prior"), cycle),
        ]

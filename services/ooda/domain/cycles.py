"""A cycle: everything the loop did about one observation, from the events that carry its id
(the observation id is every such event's correlation id), and its explanation in one plain
paragraph with the numbers it rests on."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from hartonomous.events.payloads import (
    ActionConfirmed,
    ActionFailed,
    ActionStarted,
    ConfigChanged,
    DecisionMade,
    DecisionResolved,
    HypothesesProposed,
    ObservationMade,
    OutcomeEvaluated,
    Payload,
    PriorUpdated,
)
from services.ooda.domain.metrics import Metric


@dataclass(frozen=True)
class PriorChange:
    """The knob's change (by anyone) shortly before the observation: the likely cause."""

    change: ConfigChanged
    at: datetime


@dataclass
class Cycle:
    observation: ObservationMade
    hypotheses: HypothesesProposed | None = None
    decision: DecisionMade | None = None
    resolution: DecisionResolved | None = None
    actions: list[ActionStarted] = field(default_factory=list)
    confirmed: dict[str, ActionConfirmed] = field(default_factory=dict)
    failed: dict[str, ActionFailed] = field(default_factory=dict)
    outcome: OutcomeEvaluated | None = None
    prior: PriorUpdated | None = None
    cause: PriorChange | None = None
    events: list[Payload] = field(default_factory=list)  # all of them, in log order

    @property
    def cycle_id(self) -> str:
        return self.observation.observation_id

    @classmethod
    def of(cls, events: Iterable[Payload]) -> Cycle | None:
        """The cycle these events (in log order) make; None without its observation."""
        events = list(events)
        observation = next((e for e in events if isinstance(e, ObservationMade)), None)
        if observation is None:
            return None
        cycle = cls(observation, events=events)
        for event in events:
            cycle._add(event)
        return cycle

    def _add(self, event: Payload) -> None:
        if isinstance(event, HypothesesProposed):
            self.hypotheses = event
        elif isinstance(event, DecisionMade):
            self.decision = event
        elif isinstance(event, DecisionResolved) and self.resolution is None:
            self.resolution = event  # the first resolution in the log is the one that counts
        elif isinstance(event, ActionStarted):
            self.actions.append(event)
        elif isinstance(event, ActionConfirmed):
            self.confirmed[event.action_id] = event
        elif isinstance(event, ActionFailed):
            self.failed[event.action_id] = event
        elif isinstance(event, OutcomeEvaluated):
            self.outcome = event
        elif isinstance(event, PriorUpdated):
            self.prior = event

    @property
    def decision_status(self) -> str | None:
        if self.decision is None:
            return None
        return self.resolution.status if self.resolution is not None else self.decision.status

    @property
    def status(self) -> str:
        """Where the cycle stands: observed (no playbook applies), declined, pending, rejected,
        expired, acting, evaluating, failed, or the outcome's verdict; when the verdict was a
        rollback, rolling back until every replica has read it back, then rolled back."""
        if self.outcome is not None and self.outcome.rolled_back:
            rollback = self.actions[-1].action_id if len(self.actions) > 1 else None
            if rollback in self.failed:
                return "failed"
            return "rolled back" if rollback in self.confirmed else "rolling back"
        if self.outcome is not None:
            return self.outcome.verdict
        if any(a.action_id in self.failed for a in self.actions) or (
            self.failed and not self.actions
        ):
            return "failed"
        if self.actions:
            return "evaluating" if self.actions[0].action_id in self.confirmed else "acting"
        return self.decision_status or "observed"

    def explain(self) -> str:
        """One paragraph: what changed, what the loop proposed, who decided, what it did and
        what came of it, with the numbers."""
        o = self.observation
        parts = [
            f"{_metric(o.metric)} {'rose' if o.direction == 'up' else 'fell'} from"
            f" {_num(o.baseline, o.metric)} to {_num(o.current, o.metric)} ({o.effect:+.0%};"
            f" {o.recent_samples} new samples against a baseline of {o.baseline_samples})"
            f" at {o.observed_at:%Y-%m-%d %H:%M:%S} UTC"
            + (
                f", after `{self.cause.change.key}` was set to {self.cause.change.new_value}"
                f" by {self.cause.change.actor}"
                if self.cause is not None
                else ""
            )
        ]
        parts.append(self._proposals())
        if self.decision is not None:
            parts.append(self._decided(self.decision))
        for action in self.actions:
            parts.append(self._acted(action))
        if self.outcome is not None:
            parts.append(self._judged(self.outcome))
        if self.prior is not None:
            p = self.prior
            text = f"the prior of playbook {p.playbook} is now Beta({p.alpha:g},{p.beta:g})"
            if p.suspended_until is not None:
                text += f" and it is suspended until {p.suspended_until:%H:%M:%S} UTC"
            parts.append(text)
        return "; ".join(part for part in parts if part) + "."

    def _proposals(self) -> str:
        if self.hypotheses is None:
            return ""
        candidates = self.hypotheses.candidates
        if not candidates:
            return "no playbook applies to it, so the loop did nothing"
        listed = ", ".join(
            f"{h.playbook} (set `{h.knob}` from {h.current_value} to {h.proposed_value},"
            f" prior Beta({h.prior_alpha:g},{h.prior_beta:g}))"
            for h in candidates
        )
        return f"{len(candidates)} playbook{'s' if len(candidates) > 1 else ''} proposed a change: {listed}"

    def _decided(self, d: DecisionMade) -> str:
        text = (
            f"decide chose {d.playbook} (Thompson draw {d.drawn:.2f}) and the decision was"
            f" {d.status}: {d.reason}"
        )
        r = self.resolution
        if r is not None:
            text += f"; it was {r.status} by {r.actor} at {r.resolved_at:%H:%M:%S} UTC"
            if r.reason:
                text += f" ({r.reason})"
        return text

    def _acted(self, a: ActionStarted) -> str:
        what = "rolled back" if a.rollback_of else "set"
        text = f"{a.actor} {what} `{a.knob}` from {a.old_value} to {a.new_value} at {a.started_at:%H:%M:%S} UTC"
        if a.action_id in self.confirmed:
            c = self.confirmed[a.action_id]
            seconds = (c.confirmed_at - a.started_at).total_seconds()
            text += f", confirmed by {len(c.instances)} process{'es' if len(c.instances) != 1 else ''} in {seconds:.0f} s"
        if a.action_id in self.failed:
            f = self.failed[a.action_id]
            text += f", which failed: {f.reason}"
            if not a.rollback_of:
                text += f", so it was reverted to {a.old_value}"
        return text

    def _judged(self, o: OutcomeEvaluated) -> str:
        metric = _metric(o.metric)
        if o.before_median is None or o.after_median is None or o.p_value is None:
            return (
                f"the outcome is {o.verdict}: {metric} had {o.before_samples} samples before and"
                f" {o.after_samples} after the change, too few to judge"
            )
        text = (
            f"{metric} went from {_num(o.before_median, o.metric)} to"
            f" {_num(o.after_median, o.metric)} (n={o.after_samples}, {_p(o.p_value)})"
        )
        if o.baseline is not None:
            text += f" against a baseline of {_num(o.baseline, o.metric)}"
        text += f": {o.verdict}"
        if o.guardrail_breaches:
            text += f", guardrails breached: {', '.join(o.guardrail_breaches)}"
        if o.rolled_back:
            text += ", so the change was rolled back"
        return text


def _metric(text: str) -> str:
    metric = Metric.parse(text)
    operation = metric.label("operation")
    where = f" of {operation.rsplit('/', 1)[-1]}" if operation else ""
    group = metric.label("group")
    where += f" of group {group}" if group else ""
    names = {
        "latency_p50_ms": "p50 latency",
        "latency_p95_ms": "p95 latency",
        "error_rate": "error rate",
        "consumer_lag": "consumer lag",
    }
    return names.get(metric.name, metric.name.replace("_", " ")) + where


def _num(value: float, metric: str) -> str:
    if metric.startswith("latency_"):
        return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"
    if metric.startswith("error_rate"):
        return f"{value:.1%}"
    return f"{value:.3g}"


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"

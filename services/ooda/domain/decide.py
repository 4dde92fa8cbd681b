"""decide: hypotheses → at most one decision per observation, under governance.

The candidates are ranked by Thompson sampling: one draw from each playbook's Beta prior (the
generator seeded by the hypotheses' event id, so deciding again draws the same numbers); the
highest draw is chosen. Then the rules, in order:

- `ooda.mode` off, a suspended playbook, an open decision on the knob's coupled group, the
  knob's cooldown after a change by the loop (unless someone changed it since), or its hourly
  budget spent → declined;
- the knob was changed by an operator less than `ooda.manual_hold_s` ago, `ooda.mode` is
  advise, or the change is not low-risk → pending, until an admin approves or rejects it or
  it expires after `ooda.decision_ttl_s`;
- otherwise approved by the loop itself.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from hartonomous.events.ids import derived_event_id
from hartonomous.events.payloads import (
    ActionFailed,
    ActionStarted,
    Alternative,
    ConfigChanged,
    DecisionMade,
    DecisionResolved,
    HypothesesProposed,
    Hypothesis,
    OutcomeEvaluated,
    Payload,
    PriorUpdated,
)
from hartonomous.tunables import Risk, Tunable
from services.ooda import tunables as settings
from services.ooda.domain.knobs import Knobs
from services.ooda.domain.stage import Out, Stage

PENDING, APPROVED, REJECTED, EXPIRED, DECLINED = (
    "pending",
    "approved",
    "rejected",
    "expired",
    "declined",
)
OPEN = (PENDING, APPROVED)
DECISION_STATUSES = (PENDING, APPROVED, DECLINED, REJECTED, EXPIRED)


class DecisionNotFound(LookupError):
    pass


class DecisionConflict(RuntimeError):
    """The decision cannot be approved or rejected in its present state."""


@dataclass(frozen=True)
class Verdict:
    status: str
    reason: str


class Decide(Stage):
    produces = (DecisionMade, DecisionResolved)

    def __init__(self, tunables: Mapping[str, Tunable]) -> None:
        super().__init__()
        self.knobs = Knobs(tunables)
        self.priors: dict[str, tuple[float, float]] = {}
        self.suspended: dict[str, datetime] = {}
        self.decisions: dict[str, DecisionMade] = {}
        self._group_open: dict[str, str] = {}  # coupled group -> its open decision
        self._decided: set[str] = set()  # observation ids
        self._action_decision: dict[str, str] = {}

    # -- commands (an admin, through the API) -------------------------------------------------

    def approve(self, decision_id: str, actor: str, reason: str, now: datetime) -> list[Out]:
        decision = self._pending(decision_id, now)
        current = self.knobs.text(decision.knob)
        if current != decision.from_value:
            raise DecisionConflict(
                f"{decision.knob} is {current} now, not {decision.from_value} as when decision"
                f" {decision_id} was made: reject it and let the loop decide afresh"
            )
        return self._absorb([self._resolved(decision, APPROVED, actor, reason, now)], now)

    def reject(self, decision_id: str, actor: str, reason: str, now: datetime) -> list[Out]:
        decision = self._pending(decision_id, now)
        return self._absorb([self._resolved(decision, REJECTED, actor, reason, now)], now)

    def _pending(self, decision_id: str, now: datetime) -> DecisionMade:
        decision = self.decisions.get(decision_id)
        if decision is None:
            raise DecisionNotFound(f"no decision {decision_id}")
        if decision.status != PENDING:
            raise DecisionConflict(f"decision {decision_id} is {decision.status}, not pending")
        if decision.expires_at is not None and now >= decision.expires_at:
            raise DecisionConflict(f"decision {decision_id} expired at {decision.expires_at}")
        return decision

    # -- events -----------------------------------------------------------------------------

    def on(self, payload: Payload, event_id: str, at: datetime) -> list[Out]:
        if isinstance(payload, ConfigChanged):
            self.knobs.apply(payload, at)
        elif isinstance(payload, PriorUpdated):
            self.priors[payload.playbook] = (payload.alpha, payload.beta)
            if payload.suspended_until is not None:
                self.suspended[payload.playbook] = payload.suspended_until
        elif isinstance(payload, HypothesesProposed):
            if payload.observation_id not in self._decided and payload.candidates:
                return [self._decide(payload, event_id, at)]
        elif isinstance(payload, DecisionMade):
            self._decided.add(payload.observation_id)
            self.decisions[payload.decision_id] = payload
            if payload.status in OPEN:
                self._group_open[self._group(payload.knob)] = payload.decision_id
        elif isinstance(payload, DecisionResolved):
            decision = self.decisions.get(payload.decision_id)
            if decision is not None:
                self.decisions[payload.decision_id] = replace(decision, status=payload.status)
                if payload.status not in OPEN:
                    self._close(payload.decision_id)
        elif isinstance(payload, ActionStarted) and payload.rollback_of is None:
            self._action_decision[payload.action_id] = payload.decision_id
        elif isinstance(payload, ActionFailed):
            self._close(self._action_decision.get(payload.action_id, ""))
        elif isinstance(payload, OutcomeEvaluated):
            self._close(payload.decision_id)
        return []

    def due(self, now: datetime) -> list[Out]:
        return [
            self._resolved(d, EXPIRED, "ooda:decide", "no admin answered in time", now)
            for d in self.decisions.values()
            if d.status == PENDING and d.expires_at is not None and now >= d.expires_at
        ]

    # -- the decision -------------------------------------------------------------------------

    def _decide(self, proposed: HypothesesProposed, event_id: str, at: datetime) -> Out:
        rng = random.Random(event_id)
        draws = [(rng.betavariate(*self._prior(h)), h) for h in proposed.candidates]
        drawn, chosen = max(draws, key=lambda d: d[0])
        verdict = self._govern(chosen, at)
        ttl = timedelta(seconds=float(self.knobs.value(settings.DECISION_TTL_S)))
        decision_id = derived_event_id(proposed.observation_id, "decision")
        decision = DecisionMade(
            decision_id=decision_id,
            observation_id=proposed.observation_id,
            hypothesis_id=chosen.hypothesis_id,
            playbook=chosen.playbook,
            knob=chosen.knob,
            from_value=chosen.current_value,
            to_value=chosen.proposed_value,
            risk=chosen.risk,
            status=verdict.status,
            reason=verdict.reason,
            drawn=drawn,
            alternatives=[
                Alternative(hypothesis_id=h.hypothesis_id, playbook=h.playbook, drawn=d)
                for d, h in draws
                if h is not chosen
            ],
            expires_at=at + ttl if verdict.status == PENDING else None,
            decided_at=at,
        )
        return Out(decision, decision_id, proposed.observation_id)

    def _govern(self, chosen: Hypothesis, at: datetime) -> Verdict:
        knob, knobs = chosen.knob, self.knobs
        mode = knobs.text(settings.MODE)
        if mode == "off":
            return Verdict(DECLINED, "ooda.mode is off")
        suspended = self.suspended.get(chosen.playbook)
        if suspended is not None and at < suspended:
            return Verdict(DECLINED, f"playbook {chosen.playbook} is suspended until {suspended}")
        group = self._group(knob)
        if group in self._group_open:
            return Verdict(
                DECLINED, f"decision {self._group_open[group]} on group {group} is still open"
            )
        cooldown = max(chosen.cooldown_s, float(knobs.value(settings.COOLDOWN_S)))
        last_own = [c for c in knobs.changes_since(knob, at - timedelta(hours=1)) if c.by_loop]
        last = knobs.last(knob)
        if last is not None and last.by_loop and (at - last.at).total_seconds() < cooldown:
            ago = (at - last.at).total_seconds()
            return Verdict(
                DECLINED, f"the loop changed {knob} {ago:.0f} s ago (cooldown {cooldown:g} s)"
            )
        budget = int(knobs.value(settings.HOURLY_BUDGET))
        if len(last_own) >= budget:
            return Verdict(
                DECLINED,
                f"{knob} was changed {len(last_own)} times by the loop in the last hour (budget {budget})",
            )
        hold = timedelta(seconds=float(knobs.value(settings.MANUAL_HOLD_S)))
        held = knobs.held_by_operator(knob, hold, at)
        if held is not None:
            return Verdict(
                PENDING,
                f"{held.actor} set {knob} to {held.new_value} at {held.at:%H:%M:%S}; it is theirs"
                f" for ooda.manual_hold_s={hold.total_seconds():g} s, so an admin decides",
            )
        if mode == "advise":
            return Verdict(PENDING, "ooda.mode is advise: every decision waits for an admin")
        if chosen.risk != Risk.LOW:
            return Verdict(PENDING, f"a {chosen.risk}-risk change waits for an admin")
        return Verdict(APPROVED, "a low-risk change, applied in auto mode")

    def _prior(self, hypothesis: Hypothesis) -> tuple[float, float]:
        return self.priors.get(hypothesis.playbook, (hypothesis.prior_alpha, hypothesis.prior_beta))

    def _group(self, knob: str) -> str:
        tunable = self.knobs.tunables.get(knob)
        return tunable.group if tunable is not None else knob

    def _close(self, decision_id: str) -> None:
        for group, open_id in list(self._group_open.items()):
            if open_id == decision_id:
                del self._group_open[group]

    def _resolved(
        self, decision: DecisionMade, status: str, actor: str, reason: str, at: datetime
    ) -> Out:
        resolved = DecisionResolved(
            decision_id=decision.decision_id,
            knob=decision.knob,
            status=status,
            actor=actor,
            reason=reason,
            resolved_at=at,
        )
        event_id = derived_event_id(decision.decision_id, status)
        return Out(resolved, event_id, decision.observation_id)

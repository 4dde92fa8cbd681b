"""act: an approved decision → the ConfigChanged, then proof that it took effect.

The action starts (ActionStarted, naming the ConfigChanged's id) and the change is published
with the actor `ooda:<decision id>`. Every live process that holds the knob (whose telemetry in
the last LIVE_S lists it: each replica of its owning service, however the services are spread
over processes) must then report the new value in a telemetry window; when all have, the
action is confirmed. When the deadline (`ooda.readback_timeout_s`) passes first,
the action fails and the old value is put back (actor `ooda:rollback:<action id>`): a change
is never left half-applied. A harmful outcome (from learn) is rolled back the same way, as an
action of its own. A knob someone else changed meanwhile is theirs: it is never reverted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from hartonomous.events.ids import derived_event_id
from hartonomous.events.payloads import (
    ActionConfirmed,
    ActionFailed,
    ActionStarted,
    ConfigChanged,
    DecisionMade,
    DecisionResolved,
    OutcomeEvaluated,
    Payload,
    TelemetryRecorded,
)
from hartonomous.tunables import Tunable
from services.ooda import tunables as settings
from services.ooda.domain.decide import APPROVED
from services.ooda.domain.knobs import Knobs
from services.ooda.domain.stage import Out, Stage

LIVE_S = 30.0  # a replica that sent no telemetry for this long is gone


@dataclass
class _Action:
    started: ActionStarted
    cycle: str
    confirmed: set[str] = field(default_factory=set)
    done: bool = False


class Act(Stage):
    produces = (ActionStarted, ActionConfirmed, ActionFailed, ConfigChanged)

    def __init__(self, tunables: Mapping[str, Tunable]) -> None:
        super().__init__()
        self.knobs = Knobs(tunables)
        self.actions: dict[str, _Action] = {}
        self._decisions: dict[str, DecisionMade] = {}
        self._acted: set[str] = set()  # decision ids, and action ids rolled back
        # instance -> (the knobs it holds, its last window's end)
        self._last_window: dict[str, tuple[frozenset[str], datetime]] = {}

    def on(self, payload: Payload, event_id: str, at: datetime) -> list[Out]:
        if isinstance(payload, ConfigChanged):
            self.knobs.apply(payload, at)
        elif isinstance(payload, TelemetryRecorded):
            return self._read_back(payload, at)
        elif isinstance(payload, DecisionMade):
            self._decisions[payload.decision_id] = payload
            if payload.status == APPROVED:
                return self._start(payload, at)
        elif isinstance(payload, DecisionResolved) and payload.status == APPROVED:
            decision = self._decisions.get(payload.decision_id)
            if decision is not None:
                return self._start(decision, at)
        elif isinstance(payload, ActionStarted):
            self._acted.add(payload.rollback_of or payload.decision_id)
            decision = self._decisions.get(payload.decision_id)
            cycle = decision.observation_id if decision is not None else payload.decision_id
            self.actions[payload.action_id] = _Action(payload, cycle)
        elif isinstance(payload, ActionConfirmed | ActionFailed):
            action = self.actions.get(payload.action_id)
            if action is not None:
                action.done = True
        elif isinstance(payload, OutcomeEvaluated) and payload.rolled_back:
            action = self.actions.get(payload.action_id)
            if action is not None and payload.action_id not in self._acted:
                return self._rollback(action, at)
        return []

    def due(self, now: datetime) -> list[Out]:
        found: list[Out] = []
        for action in self.actions.values():
            if action.done:
                continue
            if self._all_confirmed(action, now):
                found.append(self._confirmed(action, now))
            elif now >= action.started.deadline:
                found.extend(self._failed(action, now))
        return found

    # -- starting -----------------------------------------------------------------------------

    def _start(self, decision: DecisionMade, at: datetime) -> list[Out]:
        if decision.decision_id in self._acted:
            return []
        cycle = decision.observation_id
        action_id = derived_event_id(decision.decision_id, "action")
        current = self.knobs.text(decision.knob)
        if current != decision.from_value:
            self._acted.add(decision.decision_id)
            failed = ActionFailed(
                action_id=action_id,
                knob=decision.knob,
                reason=f"{decision.knob} is {current} now, not {decision.from_value} as when"
                " decided: someone changed it meanwhile, so the loop leaves it alone",
                failed_at=at,
            )
            return [Out(failed, derived_event_id(action_id, "failed"), cycle)]
        return self._change(
            action_id,
            decision.decision_id,
            decision.knob,
            decision.from_value,
            decision.to_value,
            f"ooda:{decision.decision_id}",
            f"playbook {decision.playbook}: {decision.reason}",
            None,
            cycle,
            at,
        )

    def _rollback(self, action: _Action, at: datetime) -> list[Out]:
        started = action.started
        if self.knobs.text(started.knob) != started.new_value:
            self._acted.add(started.action_id)
            return []  # changed again since, by someone else: theirs now
        return self._change(
            derived_event_id(started.action_id, "rollback"),
            started.decision_id,
            started.knob,
            started.new_value,
            started.old_value,
            f"ooda:rollback:{started.action_id}",
            f"the outcome of action {started.action_id} was harmful",
            started.action_id,
            action.cycle,
            at,
        )

    def _change(
        self,
        action_id: str,
        decision_id: str,
        knob: str,
        old: str,
        new: str,
        actor: str,
        reason: str,
        rollback_of: str | None,
        cycle: str,
        at: datetime,
    ) -> list[Out]:
        timeout = timedelta(seconds=float(self.knobs.value(settings.READBACK_TIMEOUT_S)))
        change_id = derived_event_id(action_id, "change")
        started = ActionStarted(
            action_id=action_id,
            decision_id=decision_id,
            knob=knob,
            old_value=old,
            new_value=new,
            actor=actor,
            change_event_id=change_id,
            rollback_of=rollback_of,
            deadline=at + timeout,
            started_at=at,
        )
        change = ConfigChanged(key=knob, old_value=old, new_value=new, reason=reason, actor=actor)
        return [Out(started, action_id, cycle), Out(change, change_id, cycle)]

    # -- read-back ------------------------------------------------------------------------------

    def _read_back(self, window: TelemetryRecorded, at: datetime) -> list[Out]:
        self._last_window[window.instance] = (frozenset(window.tunables), window.window_end)
        found = []
        for action in self.actions.values():
            started = action.started
            if action.done or started.knob not in window.tunables:
                continue
            if (
                window.window_end >= started.started_at
                and window.tunables.get(started.knob) == started.new_value
            ):
                action.confirmed.add(window.instance)
            if self._all_confirmed(action, at):
                found.append(self._confirmed(action, at))
        return found

    def _live(self, action: _Action, now: datetime) -> set[str]:
        """The processes holding the action's knob that reported lately."""
        horizon = now - timedelta(seconds=LIVE_S)
        return {
            instance
            for instance, (held, seen) in self._last_window.items()
            if action.started.knob in held and seen >= horizon
        }

    def _all_confirmed(self, action: _Action, now: datetime) -> bool:
        live = self._live(action, now)
        return bool(live) and live <= action.confirmed

    def _confirmed(self, action: _Action, at: datetime) -> Out:
        action.done = True
        action_id = action.started.action_id
        confirmed = ActionConfirmed(
            action_id=action_id,
            knob=action.started.knob,
            instances=sorted(action.confirmed),
            confirmed_at=at,
        )
        return Out(confirmed, derived_event_id(action_id, "confirmed"), action.cycle)

    def _failed(self, action: _Action, at: datetime) -> list[Out]:
        action.done = True
        started = action.started
        missing = sorted(self._live(action, at) - action.confirmed)
        failed = ActionFailed(
            action_id=started.action_id,
            knob=started.knob,
            reason=f"no read-back of {started.knob}={started.new_value} from every live process"
            f" holding it by {started.deadline:%H:%M:%S}",
            missing=missing,
            failed_at=at,
        )
        found = [Out(failed, derived_event_id(started.action_id, "failed"), action.cycle)]
        if started.rollback_of is None and self.knobs.text(started.knob) == started.new_value:
            # Put the old value back at once; a rollback that failed is not undone (that would
            # reapply the harmful value).
            revert = ConfigChanged(
                key=started.knob,
                old_value=started.new_value,
                new_value=started.old_value,
                reason=f"action {started.action_id} was not confirmed in time",
                actor=f"ooda:rollback:{started.action_id}",
            )
            found.append(Out(revert, derived_event_id(started.action_id, "revert"), action.cycle))
        return found

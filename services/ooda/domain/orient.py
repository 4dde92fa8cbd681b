"""orient: an observation → the hypotheses of every playbook it triggers, each with the
change it would make to the knob's current value and its expected value (the mean of the
playbook's Beta prior, as the last PriorUpdated left it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from hartonomous.events.ids import derived_event_id
from hartonomous.events.payloads import (
    ConfigChanged,
    Guardrail,
    HypothesesProposed,
    Hypothesis,
    ObservationMade,
    Payload,
    PriorUpdated,
)
from hartonomous.tunables import Tunable
from services.ooda import tunables as settings
from services.ooda.domain.knobs import Knobs
from services.ooda.domain.metrics import Metric
from services.ooda.domain.playbooks import PLAYBOOKS, Playbook, propose
from services.ooda.domain.stage import Out, Stage


class Orient(Stage):
    produces = (HypothesesProposed,)

    def __init__(
        self, tunables: Mapping[str, Tunable], playbooks: Sequence[Playbook] = PLAYBOOKS
    ) -> None:
        super().__init__()
        self.knobs = Knobs(tunables)
        self.playbooks = {p.name: p for p in playbooks}
        self.priors: dict[str, tuple[float, float]] = {}
        self._oriented: set[str] = set()

    def prior(self, playbook: Playbook) -> tuple[float, float]:
        return self.priors.get(playbook.name, playbook.prior)

    def on(self, payload: Payload, event_id: str, at: datetime) -> list[Out]:
        if isinstance(payload, ConfigChanged):
            self.knobs.apply(payload, at)
        elif isinstance(payload, PriorUpdated):
            self.priors[payload.playbook] = (payload.alpha, payload.beta)
        elif isinstance(payload, HypothesesProposed):
            self._oriented.add(payload.observation_id)
        elif isinstance(payload, ObservationMade) and payload.observation_id not in self._oriented:
            return [self._orient(payload, at)]
        return []

    def _orient(self, observation: ObservationMade, at: datetime) -> Out:
        metric = Metric.parse(observation.metric)
        candidates = []
        for playbook in self.playbooks.values():
            hypothesis = self._hypothesis(playbook, observation, metric, at)
            if hypothesis is not None:
                candidates.append(hypothesis)
        proposed = HypothesesProposed(
            observation_id=observation.observation_id,
            metric=observation.metric,
            candidates=candidates,
            proposed_at=at,
        )
        event_id = derived_event_id(observation.observation_id, "hypotheses")
        return Out(proposed, event_id, observation.observation_id)

    def _hypothesis(
        self, playbook: Playbook, observation: ObservationMade, metric: Metric, at: datetime
    ) -> Hypothesis | None:
        trigger = playbook.trigger
        if (
            not trigger.matches(metric)
            or observation.direction != trigger.direction
            or abs(observation.effect) < trigger.min_effect
            or observation.current < trigger.at_least
        ):
            return None
        knob = playbook.knob_for(metric)
        tunable = self.knobs.tunables.get(knob)
        if tunable is None or not tunable.autonomous:
            return None
        current = self.knobs.value(knob)
        proposed = propose(playbook, tunable, current, self.knobs.last(knob), at)
        if proposed is None:
            return None
        alpha, beta = self.prior(playbook)
        return Hypothesis(
            hypothesis_id=derived_event_id(observation.observation_id, playbook.name),
            playbook=playbook.name,
            knob=knob,
            current_value=tunable.text(current),
            proposed_value=proposed,
            risk=str(playbook.risk or tunable.risk),
            expect_metric=str(playbook.expect.bound(metric)),
            expect_direction=str(playbook.expect.direction),
            min_effect=playbook.expect.min_effect,
            guardrails=[
                Guardrail(
                    metric=str(g.bound(metric)), worse=str(g.direction), max_effect=g.min_effect
                )
                for g in playbook.guardrails
            ],
            evaluation_s=float(self.knobs.value(settings.EVALUATION_S)) or playbook.evaluation_s,
            cooldown_s=playbook.cooldown_s,
            prior_alpha=alpha,
            prior_beta=beta,
            expected_value=alpha / (alpha + beta),
        )

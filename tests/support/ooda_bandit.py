"""Decide's choice between playbooks that trigger together, with outcomes drawn from known
success rates and fed back as learn would (an OutcomeEvaluated that closes the decision, a
PriorUpdated with the new Beta prior). Orient proposes, decide draws: the real stages."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from datetime import timedelta

from hartonomous.events.ids import named_event_id
from hartonomous.events.payloads import (
    DecisionMade,
    ObservationMade,
    OutcomeEvaluated,
    PriorUpdated,
)
from hartonomous.tunables import catalog
from services.ooda.domain.decide import Decide
from services.ooda.domain.orient import Orient
from services.ooda.domain.playbooks import EMBED, Playbook
from tests.support.ooda_sim import START


def bandit_choices(
    seed: int, playbooks: Sequence[Playbook], success: Mapping[str, float], rounds: int
) -> list[str]:
    """The playbook decide chose in each round."""
    rng = random.Random(seed)
    tunables = catalog()
    orient, decide = Orient(tunables, playbooks), Decide(tunables)
    priors = {p.name: p.prior for p in playbooks}
    chosen = []
    for n in range(rounds):
        at = START + timedelta(hours=n)  # past every cooldown and budget
        observation_id = named_event_id(int(at.timestamp() * 1000), f"bandit:{seed}:{n}")
        observation = ObservationMade(
            observation_id=observation_id,
            service="inference",
            metric=f"latency_p95_ms{{operation={EMBED},service=inference}}",
            metric_name="latency_p95_ms",
            labels={"operation": EMBED, "service": "inference"},
            direction="up",
            baseline=40.0,
            current=60.0,
            effect=0.5,
            baseline_samples=180,
            recent_samples=3,
            windows=[],
            since=at,
            observed_at=at,
        )
        [proposed] = orient.receive(observation, observation_id, at)
        [made] = decide.receive(proposed.payload, proposed.event_id, at)
        decision = made.payload
        assert isinstance(decision, DecisionMade) and decision.status == "approved", decision
        chosen.append(decision.playbook)
        improved = rng.random() < success[decision.playbook]
        alpha, beta = priors[decision.playbook]
        priors[decision.playbook] = (alpha + 1, beta) if improved else (alpha, beta + 1)
        outcome_id = named_event_id(int(at.timestamp() * 1000), f"outcome:{seed}:{n}")
        outcome = OutcomeEvaluated(
            outcome_id=outcome_id,
            action_id=outcome_id,
            decision_id=decision.decision_id,
            playbook=decision.playbook,
            knob=decision.knob,
            verdict="improved" if improved else "no change",
            metric=proposed.payload.metric,  # type: ignore[attr-defined]
            before_samples=12,
            after_samples=24,
            rolled_back=False,
            evaluated_at=at,
        )
        prior = PriorUpdated(
            playbook=decision.playbook,
            alpha=priors[decision.playbook][0],
            beta=priors[decision.playbook][1],
            outcome_id=outcome_id,
            updated_at=at,
        )
        for stage in (orient, decide):
            stage.receive(outcome, outcome_id, at)
            stage.receive(prior, named_event_id(0, f"prior:{seed}:{n}"), at)
    return chosen

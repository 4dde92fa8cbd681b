"""The built-in playbooks are valid data: every knob they name is a tunable the loop may turn,
every metric they watch is one the platform measures, and every proposal stays in bounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hartonomous.events.payloads import HypothesesProposed, ObservationMade
from hartonomous.tunables import Kind, catalog
from services.ooda.domain.knobs import KnobChange
from services.ooda.domain.metrics import Metric
from services.ooda.domain.orient import Orient
from services.ooda.domain.playbooks import PLAYBOOKS, Playbook, Restore, propose

NOW = datetime(2026, 12, 3, tzinfo=UTC)
MEASURED = {  # what telemetry windows carry (runtime/windows.py and the services' gauges)
    "latency_p50_ms",
    "latency_p95_ms",
    "error_rate",
    "consumer_lag",
    "inference_queue_depth",
    "inference_batch_size",
    "search_repeated_queries",
    "search_query_cache_hit_rate",
    "search_dead_slots",
}


def test_playbook_names_are_unique() -> None:
    assert len({p.name for p in PLAYBOOKS}) == len(PLAYBOOKS)


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_a_playbook_turns_a_real_knob_on_real_metrics(playbook: Playbook) -> None:
    knob = playbook.knob_for(Metric.of("consumer_lag", group="search"))
    tunable = catalog()[knob]
    assert tunable.autonomous, f"{knob} is the operator's alone"
    assert tunable.kind in (Kind.INT, Kind.FLOAT, Kind.CHOICE, Kind.BOOL)
    for signal in (playbook.trigger, playbook.expect, *playbook.guardrails):
        assert signal.metric in MEASURED
    assert playbook.expect.direction != playbook.trigger.direction or (
        playbook.expect.metric != playbook.trigger.metric
    )


@pytest.mark.parametrize("playbook", PLAYBOOKS, ids=lambda p: p.name)
def test_every_proposal_stays_within_the_knob_s_bounds(playbook: Playbook) -> None:
    knob = playbook.knob_for(Metric.of("consumer_lag", group="search"))
    tunable = catalog()[knob]
    candidates = [tunable.default, tunable.minimum, tunable.maximum]
    for current in [c for c in candidates if c is not None]:
        value = tunable.parse(str(int(current) if tunable.kind is Kind.INT else current))
        last = KnobChange(tunable.text(tunable.default), tunable.text(value), "user:k1", NOW)
        proposed = propose(playbook, tunable, value, last, NOW + timedelta(hours=1))
        if proposed is not None:
            tunable.parse(proposed)  # raises InvalidSetting when out of bounds


def test_restore_puts_back_an_operator_s_value_but_never_the_loop_s_own() -> None:
    [restore] = [p for p in PLAYBOOKS if isinstance(p.change, Restore)]
    tunable = catalog()[restore.knob]
    by_hand = KnobChange("5", "250", "user:k1", NOW)
    by_loop = KnobChange("250", "5", "ooda:d1", NOW)
    soon = NOW + timedelta(minutes=1)
    assert propose(restore, tunable, 250.0, by_hand, soon) == "5"
    assert propose(restore, tunable, 5.0, by_loop, soon) is None
    assert propose(restore, tunable, 250.0, by_hand, NOW + timedelta(hours=1)) is None


@pytest.mark.parametrize(("lag", "proposed"), [(6.0, False), (5000.0, True)])
def test_a_lag_of_a_handful_of_records_is_no_problem_to_solve(lag: float, proposed: bool) -> None:
    orient = Orient(catalog())
    metric = Metric.of("consumer_lag", group="provenance", service="provenance")
    observation = ObservationMade(
        observation_id="o1",
        service="provenance",
        metric=str(metric),
        metric_name=metric.name,
        labels=dict(metric.labels),
        direction="up",
        baseline=0.0,
        current=lag,
        effect=float("inf"),
        baseline_samples=60,
        recent_samples=3,
        windows=["w1"],
        since=NOW,
        observed_at=NOW,
    )
    outs = orient.receive(observation, "o1", NOW)
    playbooks = [
        h.playbook
        for o in outs
        if isinstance(o.payload, HypothesesProposed)
        for h in o.payload.candidates
    ]
    assert ("bigger-consumer-batches" in playbooks) is proposed

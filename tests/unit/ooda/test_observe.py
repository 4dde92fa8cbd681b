"""observe publishes news only: a change found in windows older than STALE_S by the clock (a
stage that fell behind, or a rebuild replaying from a horizon) is not published."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hartonomous.events.payloads import ObservationMade
from services.ooda.domain.observe import STALE_S, Observe
from tests.support.ooda_sim import INTERVAL_S, embed_window

START = datetime(2026, 12, 1, tzinfo=UTC)
INTERVAL = timedelta(seconds=INTERVAL_S)


def observations(clock: datetime | None) -> list[ObservationMade]:
    """What observe publishes for 80 windows of steady p95 and 10 at twice that, told the
    time `clock` (None: never told) before the first window."""
    observe, rng = Observe(), random.Random(7)
    if clock is not None:
        observe.tick(clock)
    found = []
    for i in range(90):
        end = START + i * INTERVAL
        p95 = (30.0 if i < 80 else 60.0) * (1 + rng.uniform(-0.1, 0.1))
        window = embed_window("inference-1", end, p95, 2.0, {})
        found += [out.payload for out in observe.receive(window, f"w{i}", end)]
    return [o for o in found if isinstance(o, ObservationMade)]


def test_a_fresh_change_is_published() -> None:
    live = START + 90 * INTERVAL
    for clock in (live, None):
        found = {(o.metric_name, o.direction) for o in observations(clock)}
        assert ("latency_p95_ms", "up") in found, clock


def test_a_change_older_than_stale_s_is_history() -> None:
    later = START + 90 * INTERVAL + timedelta(seconds=STALE_S + 1)
    assert observations(later) == []

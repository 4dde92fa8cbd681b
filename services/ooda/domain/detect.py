"""Change detection, per metric: a robust baseline (median and MAD of the trailing samples)
and a two-sided CUSUM of the standardised residuals.

A sample moves the CUSUM by its distance from the baseline in robust standard deviations,
less a slack `k`; a change is reported once a CUSUM passes `h` and the recent samples' median
differs from the baseline by at least `min_effect` (relative). No baseline (fewer than
`min_baseline` samples) means no verdict at all. Every sample joins the baseline after it was
judged against it (holding some out would bias the baseline towards the others). After a
change the detector learns a fresh baseline from the samples that follow, so one shift is one
observation.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime

from services.ooda.domain.metrics import Metric, Sample


@dataclass(frozen=True)
class Tuning:
    """Chosen on the simulation (tests/unit/ooda/test_simulation.py): with 5 s windows and
    ±15% jitter, a +25% step is found in about two windows and 400 hours of noise raise no
    alarm. The fixed minimum effect keeps a merely significant wobble from becoming work."""

    baseline_samples: int = 180  # fifteen minutes of 5 s windows
    min_baseline: int = 60  # no verdict before five minutes of history
    slack: float = 1.3  # k, in robust standard deviations
    threshold: float = 1.8  # h
    min_effect: float = 0.15  # relative change of the recent median
    floor: float = 0.02  # the smallest scale, relative to the baseline (a perfectly flat series)


@dataclass(frozen=True)
class Change:
    """A detected change of one metric, with the numbers it rests on."""

    metric: Metric
    direction: str  # "up" or "down"
    baseline: float  # median of the baseline samples
    current: float  # median of the samples since the change began
    effect: float  # (current - baseline) / baseline
    baseline_samples: int
    recent_samples: int
    sources: tuple[str, ...]  # the windows (event ids) the recent samples came from
    detected_at: datetime


@dataclass
class _Series:
    baseline: deque[float]
    up: float = 0.0
    down: float = 0.0
    recent: list[Sample] = field(default_factory=list)


class Detector:
    def __init__(self, tuning: Tuning | None = None) -> None:
        self.tuning = tuning or Tuning()
        self._series: dict[Metric, _Series] = {}

    def feed(self, sample: Sample) -> Change | None:
        t = self.tuning
        series = self._series.get(sample.metric)
        if series is None:
            series = self._series[sample.metric] = _Series(deque(maxlen=t.baseline_samples))
        if len(series.baseline) < t.min_baseline:
            series.baseline.append(sample.value)
            return None
        median = statistics.median(series.baseline)
        mad = statistics.median(abs(v - median) for v in series.baseline)
        scale = max(1.4826 * mad, t.floor * abs(median), 1e-9)
        z = (sample.value - median) / scale
        series.up = max(0.0, series.up + z - t.slack)
        series.down = max(0.0, series.down - z - t.slack)
        series.baseline.append(sample.value)
        if series.up == 0.0 and series.down == 0.0:
            series.recent.clear()
            return None
        series.recent.append(sample)
        if max(series.up, series.down) <= t.threshold:
            return None
        direction = "up" if series.up > series.down else "down"
        current = statistics.median(s.value for s in series.recent)
        effect = (current - median) / abs(median) if median else float("inf")
        series.up = series.down = 0.0
        if abs(effect) < t.min_effect:  # significant, but too small to act on: no change
            series.recent.clear()
            return None
        change = Change(
            sample.metric,
            direction,
            median,
            current,
            effect,
            len(series.baseline),
            len(series.recent),
            tuple(s.source for s in series.recent),
            sample.at,
        )
        # The level has moved: a fresh baseline from the samples that follow.
        series.baseline.clear()
        series.recent.clear()
        return change

"""Change detection, per metric: a robust baseline (median and MAD of the trailing samples)
and a two-sided CUSUM of the standardised residuals.

A sample moves the CUSUM by its distance from the baseline in robust standard deviations,
less a slack `k`; a change is reported once a CUSUM passes `h`, at least `min_recent` samples
follow the change's likeliest onset, and their median differs from the baseline by at least
`min_effect` (relative). No baseline (fewer than
`min_baseline` samples) means no verdict at all. Every sample joins the baseline after it was
judged against it (holding some out would bias the baseline towards the others). After a
change the detector starts a fresh baseline from the samples of the new level, so one shift is
one observation; while that baseline is young (under `min_baseline` samples) it keeps judging,
with the noise it learned before scaled to the new level and a larger minimum effect, so a
second change soon after the first is seen too rather than learnt as normal.
"""

from __future__ import annotations

import math
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
    # ... while the baseline is young after a change: a level judged from a few samples
    # wobbles, and a swing is no second change
    young_min_effect: float = 0.3
    min_recent: int = 3  # samples since the change began: the evidence an action is judged by
    floor: float = 0.02  # the smallest scale, relative to the baseline (a perfectly flat series)
    refresh_samples: int = (
        6  # the baseline's median and MAD are recomputed every 30 s, not per sample
    )


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
    since: datetime  # the first recent sample's window end: when the change began
    detected_at: datetime


@dataclass
class _Side:
    """One side of the two-sided CUSUM, and the samples since it last stood at zero (the
    change's onset, as far as the samples can tell)."""

    sum: float = 0.0
    since_zero: list[Sample] = field(default_factory=list)

    def add(self, step: float, sample: Sample) -> None:
        self.sum = max(0.0, self.sum + step)
        if self.sum == 0.0:
            self.since_zero.clear()
        else:
            self.since_zero.append(sample)

    def reset(self) -> None:
        self.sum = 0.0
        self.since_zero.clear()


@dataclass
class _Series:
    baseline: deque[float]
    up: _Side = field(default_factory=_Side)
    down: _Side = field(default_factory=_Side)
    median: float = 0.0
    scale: float = 0.0
    stale: int = 0  # samples since the median and scale were computed
    # The noise, relative to the level, of the last full baseline: what a young baseline after
    # a change is judged with (None: the metric never had one).
    relative_noise: float | None = None

    def refresh(self, tuning: Tuning) -> None:
        median = statistics.median(self.baseline)
        if len(self.baseline) >= tuning.min_baseline:
            mad = statistics.median(abs(v - median) for v in self.baseline)
            scale = 1.4826 * mad
            self.relative_noise = scale / abs(median) if median else None
        else:  # young, after a change: the old noise at the new level
            scale = (self.relative_noise or 0.0) * abs(median)
        self.median = median
        self.scale = max(scale, tuning.floor * abs(median), 1e-9)
        self.stale = 0


class Detector:
    def __init__(self, tuning: Tuning | None = None) -> None:
        self.tuning = tuning or Tuning()
        self._series: dict[Metric, _Series] = {}

    def feed(self, sample: Sample) -> Change | None:
        t = self.tuning
        series = self._series.get(sample.metric)
        if series is None:
            series = self._series[sample.metric] = _Series(deque(maxlen=t.baseline_samples))
        young = len(series.baseline) < t.min_baseline
        if young and series.relative_noise is None:  # no history at all: no verdict
            series.baseline.append(sample.value)
            series.stale = t.refresh_samples
            return None
        if series.stale >= t.refresh_samples or young:
            series.refresh(t)
        series.stale += 1
        median = series.median
        z = (sample.value - median) / series.scale
        series.up.add(z - t.slack, sample)
        series.down.add(-z - t.slack, sample)
        series.baseline.append(sample.value)
        direction, side = (
            ("up", series.up) if series.up.sum >= series.down.sum else ("down", series.down)
        )
        if side.sum <= t.threshold:
            return None
        # The samples since the side's last zero may begin with noise from before the change:
        # the new level is measured from the likeliest onset, once enough samples follow it.
        recent = side.since_zero[_onset(side.since_zero, median) :]
        if len(recent) < t.min_recent:
            return None
        current = statistics.median(s.value for s in recent)
        effect = _relative(current, median)
        least = t.young_min_effect if len(series.baseline) <= t.min_baseline else t.min_effect
        if abs(effect) < least:  # significant, but too small to act on (yet)
            return None
        change = Change(
            sample.metric,
            direction,
            median,
            current,
            effect,
            len(series.baseline) - 1,
            len(recent),
            tuple(s.source for s in recent),
            recent[0].at,
            sample.at,
        )
        # The level has moved: a fresh baseline from the samples of the new level.
        series.baseline.clear()
        series.baseline.extend(s.value for s in recent)
        series.up.reset()
        series.down.reset()
        series.stale = t.refresh_samples
        return change


def _onset(samples: list[Sample], baseline: float) -> int:
    """The likeliest start of a shift away from `baseline` in `samples`: the split that
    maximises (samples after it) x (their mean's distance from the baseline)^2."""
    best, best_score, tail = 0, -1.0, 0.0
    n = len(samples)
    for k in range(n - 1, -1, -1):
        tail += samples[k].value
        score = (n - k) * (tail / (n - k) - baseline) ** 2
        if score > best_score:
            best, best_score = k, score
    return best


def _relative(value: float, baseline: float) -> float:
    """The relative change from `baseline`; from zero, any rise is an infinite one."""
    if baseline:
        return (value - baseline) / abs(baseline)
    return 0.0 if value == baseline else math.copysign(math.inf, value - baseline)

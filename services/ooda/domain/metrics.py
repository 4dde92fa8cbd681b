"""What the loop watches: one number per metric per telemetry window, read from the window's
operations and gauges (`latency_p95_ms{operation=...}`, `consumer_lag{group=...}`, ...).
A value the window did not measure is no sample at all: missing data is never evidence."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from hartonomous.events.payloads import TelemetryRecorded


@dataclass(frozen=True, order=True)
class Metric:
    name: str
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, name: str, **labels: str) -> Metric:
        return cls(name, tuple(sorted(labels.items())))

    def __str__(self) -> str:
        if not self.labels:
            return self.name
        return f"{self.name}{{{','.join(f'{k}={v}' for k, v in self.labels)}}}"

    def label(self, name: str) -> str | None:
        return dict(self.labels).get(name)


@dataclass(frozen=True)
class Sample:
    metric: Metric
    value: float
    at: datetime  # the window's end
    source: str  # the window's event id
    instance: str


def samples_of(window: TelemetryRecorded, event_id: str) -> list[Sample]:
    """Every number a window measured: per operation with requests its latency quantiles and
    error rate, and every gauge."""
    found: list[Sample] = []

    def add(metric: Metric, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            found.append(Sample(metric, value, window.window_end, event_id, window.instance))

    for op in window.operations:
        if op.requests:
            add(Metric.of("latency_p50_ms", operation=op.operation), op.p50_ms)
            add(Metric.of("latency_p95_ms", operation=op.operation), op.p95_ms)
            add(Metric.of("error_rate", operation=op.operation), op.errors / op.requests)
    for gauge in window.gauges:
        add(Metric.of(gauge.name, **gauge.labels), gauge.value)
    return found


def read_back(window: TelemetryRecorded) -> Mapping[str, str]:
    """The effective tunable values the window's process reported."""
    return window.tunables

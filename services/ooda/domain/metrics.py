"""What the loop watches: one number per metric per telemetry window, read from the window's
operations and gauges (`latency_p95_ms{operation=...}`, `consumer_lag{group=...}`, ...).
A value the window did not measure is no sample at all: missing data is never evidence."""

from __future__ import annotations

import math
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

    @classmethod
    def parse(cls, text: str) -> Metric:
        """The metric `str(metric)` wrote."""
        name, _, rest = text.partition("{")
        pairs = [p.split("=", 1) for p in rest.rstrip("}").split(",") if p]
        return cls.of(name, **{k: v for k, v in pairs})

    def covers(self, other: Metric) -> bool:
        """`other` is this metric, with at least these labels (a sample of it)."""
        theirs = dict(other.labels)
        return self.name == other.name and all(theirs.get(k) == v for k, v in self.labels)


@dataclass(frozen=True)
class Sample:
    metric: Metric
    value: float
    at: datetime  # the window's end
    source: str  # the window's event id
    instance: str


def samples_of(window: TelemetryRecorded, event_id: str) -> list[Sample]:
    """Every number a window measured: per operation with requests its latency quantiles and
    error rate, and every gauge; each labelled with the window's service."""
    found: list[Sample] = []

    def add(metric: Metric, value: float | None) -> None:
        if value is not None and math.isfinite(value):
            found.append(Sample(metric, value, window.window_end, event_id, window.instance))

    for op in window.operations:
        if op.requests:
            labels = {"service": window.service, "operation": op.operation}
            add(Metric.of("latency_p50_ms", **labels), op.p50_ms)
            add(Metric.of("latency_p95_ms", **labels), op.p95_ms)
            add(Metric.of("error_rate", **labels), op.errors / op.requests)
    for gauge in window.gauges:
        add(Metric.of(gauge.name, **{"service": window.service, **gauge.labels}), gauge.value)
    return found

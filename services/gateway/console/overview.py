"""The overview's numbers: every process's telemetry windows (the `telemetry` topic) folded
into one-minute buckets over the last hour, per series: an operation's requests/s, errors and
p95, and each gauge (consumer lag, inference queue depth and batch size, ...) summed over the
instances that report it. The log is the source, so the overview is the same from any gateway
replica and on either topology."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hartonomous.events.payloads import TelemetryRecorded

BUCKET_S = 60
BUCKETS = 60  # the last hour


def _bucket(at: datetime) -> int:
    return int(at.timestamp()) // BUCKET_S


@dataclass
class _Minute:
    requests: int = 0
    errors: int = 0
    covered: dict[str, float] = field(default_factory=dict)  # instance -> seconds of windows
    p95_ms: float | None = None
    gauges: dict[str, float] = field(default_factory=dict)  # instance -> its latest value


@dataclass
class Overview:
    # series key -> bucket -> what the windows ending in that minute said
    _minutes: dict[str, dict[int, _Minute]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(_Minute))
    )
    latest: datetime | None = None

    def add(self, window: TelemetryRecorded) -> None:
        bucket = _bucket(window.window_end)
        seconds = max((window.window_end - window.window_start).total_seconds(), 1e-3)
        for op in window.operations:
            minute = self._minutes[f"{window.service} · {op.operation}"][bucket]
            minute.requests += op.requests
            minute.errors += op.errors
            minute.covered[window.instance] = minute.covered.get(window.instance, 0.0) + seconds
            if op.p95_ms is not None:
                minute.p95_ms = max(minute.p95_ms or 0.0, op.p95_ms)
        for gauge in window.gauges:
            labels = ",".join(f"{k}={v}" for k, v in sorted(gauge.labels.items()))
            name = f"{gauge.name}{{{labels}}}" if labels else gauge.name
            self._minutes[f"gauge · {name}"][bucket].gauges[window.instance] = gauge.value
        if self.latest is None or window.window_end > self.latest:
            self.latest = window.window_end

    def snapshot(self, now: datetime | None = None) -> dict[str, Any]:
        """Per series, its last hour as BUCKETS values, oldest first (null: nothing then)."""
        last = _bucket(now or datetime.now(UTC))
        buckets = range(last - BUCKETS + 1, last + 1)
        operations, gauges = [], []
        for key in sorted(self._minutes):
            minutes = self._minutes[key]
            for old in [b for b in minutes if b < buckets.start]:
                del minutes[old]
            if not minutes:
                continue
            series = [minutes.get(b) for b in buckets]
            if key.startswith("gauge · "):
                values = [sum(m.gauges.values()) if m else None for m in series]
                gauges.append({"name": key.removeprefix("gauge · "), "values": values})
                continue
            operations.append(
                {
                    "name": key,
                    "rps": [_rate(m) if m else None for m in series],
                    "errors": [m.errors if m else None for m in series],
                    "p95_ms": [m.p95_ms if m else None for m in series],
                }
            )
        latest = self.latest.isoformat() if self.latest else None
        return {"bucket_s": BUCKET_S, "latest": latest, "operations": operations, "gauges": gauges}


def _rate(minute: _Minute) -> float:
    """Requests/s of every instance together, over the time their windows covered."""
    return round(minute.requests / max(minute.covered.values()), 3)


def hour_ago(now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) - timedelta(seconds=BUCKET_S * BUCKETS)

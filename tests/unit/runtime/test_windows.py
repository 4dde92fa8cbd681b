"""A telemetry window holds what was measured in it alone: exact quantiles of its requests,
server errors apart from the caller's, levels sampled at its end (an unmeasured one left out,
never a zero), the tunables' effective values; and it stays bounded under any load."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from hartonomous.runtime.windows import MAX_SAMPLES, WindowRecorder, quantile


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 3, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_quantiles_are_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (quantile(values, 0.5), quantile(values, 0.95), quantile(values, 0.99)) == (50, 95, 99)
    assert quantile([7.0], 0.99) == 7.0


def test_a_window_holds_its_own_requests_and_then_starts_afresh() -> None:
    clock = Clock()
    recorder = WindowRecorder("inference", "host-1", now=clock)
    for ms in range(1, 101):
        recorder.observe("Embed", ms / 1000, failed=ms > 98)
    clock.now += timedelta(seconds=5)
    first = recorder.close({"inference.batch.max_wait_ms": "5"})
    [embed] = first.operations
    assert (embed.requests, embed.errors) == (100, 2)
    assert (embed.p50_ms, embed.p95_ms, embed.p99_ms) == (50.0, 95.0, 99.0)
    assert (first.window_end - first.window_start, first.tunables) == (
        timedelta(seconds=5),
        {"inference.batch.max_wait_ms": "5"},
    )
    clock.now += timedelta(seconds=5)
    second = recorder.close({})
    assert second.operations == [] and second.window_start == first.window_end


def test_a_level_not_measured_yet_is_left_out_never_reported_as_zero() -> None:
    recorder = WindowRecorder("search", "host-1")
    lag: list[float | None] = [None]
    recorder.gauge("consumer_lag", lambda: lag[0], group="search")
    recorder.gauge("broken", lambda: float("nan"))
    assert recorder.close({}).gauges == []
    lag[0] = 12.0
    [sample] = recorder.close({}).gauges
    assert (sample.name, sample.labels, sample.value) == ("consumer_lag", {"group": "search"}, 12.0)


def test_memory_stays_bounded_and_the_quantiles_representative() -> None:
    recorder = WindowRecorder("gateway", "host-1")
    rng = random.Random(5)
    for _ in range(5 * MAX_SAMPLES):
        recorder.observe("POST /v1/search", rng.uniform(0, 0.1))
    [search] = recorder.close({}).operations
    assert search.requests == 5 * MAX_SAMPLES
    assert search.p50_ms is not None and abs(search.p50_ms - 50) < 2  # a uniform 0..100 ms

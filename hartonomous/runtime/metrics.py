"""Prometheus metrics shared by the runtime (one registry per process)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_HANDLED = Counter(
    "hartonomous_events_handled_total",
    "Events handled by consumers, by outcome (ok, retried, dead_lettered)",
    ["group", "topic", "outcome"],
)
CONSUMER_LAG = Gauge(
    "hartonomous_consumer_lag",
    "Records appended to a partition and not yet handled by the group",
    ["group", "topic", "partition"],
)
BATCH_SIZE = Histogram(
    "hartonomous_consumer_batch_size",
    "Records per polled batch",
    ["group"],
    buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500),
)

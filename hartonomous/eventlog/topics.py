"""The one list of topics (DESIGN.md §3). Provisioning on either engine reads it from here."""

from __future__ import annotations

from hartonomous.eventlog.port import TopicSpec

DOMAIN_TOPICS: tuple[str, ...] = (
    "atoms",
    "embeddings",
    "models",
    "inference",
    "search",
    "usage",
    "telemetry",
    "ooda.observations",
    "ooda.hypotheses",
    "ooda.decisions",
    "ooda.actions",
    "ooda.outcomes",
    "control",
)

DEFAULT_PARTITIONS = 6


def dlq_topic(topic: str) -> str:
    return f"{topic}.dlq"


def platform_topics(partitions: int = DEFAULT_PARTITIONS) -> list[TopicSpec]:
    """Every domain topic and its dead-letter topic."""
    specs = [TopicSpec(name, partitions) for name in DOMAIN_TOPICS]
    specs += [TopicSpec(dlq_topic(name), 1) for name in DOMAIN_TOPICS]
    return specs

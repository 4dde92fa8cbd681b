"""The one list of topics (DESIGN.md §3). Provisioning on either engine reads it from here."""

from __future__ import annotations

from hartonomous.eventlog.port import EventLog, TopicSpec, UnknownTopicError

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


async def provision_topics(event_log: EventLog, mode: str) -> None:
    """What a process does with the platform's topics at start
    (HARTONOMOUS_TOPIC_PROVISIONING): "create" the missing ones, or "require" them all and
    name the missing ones."""
    specs = platform_topics()
    if mode == "create":
        await event_log.ensure_topics(specs)
        return
    if mode != "require":
        raise ValueError(f"HARTONOMOUS_TOPIC_PROVISIONING is 'create' or 'require', not {mode!r}")
    missing = sorted({spec.name for spec in specs} - set(await event_log.topics()))
    if missing:
        raise UnknownTopicError(
            f"missing topics {', '.join(missing)}: this process does not create topics"
            " (HARTONOMOUS_TOPIC_PROVISIONING=require); provision them with"
            " `hartonomous topics --create`"
        )

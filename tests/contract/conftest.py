"""The EventLog contract runs once per adapter: embedded (real Postgres) and Kafka (real broker)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import EventLog, TopicSpec


@pytest.fixture(params=["embedded", "kafka"])
async def eventlog(request: pytest.FixtureRequest, pg_url: str) -> AsyncIterator[EventLog]:
    event_log: EventLog
    if request.param == "embedded":
        event_log = EmbeddedEventLog(pg_url, heartbeat_interval=0.3, session_timeout=3.0)
    else:
        from hartonomous.eventlog.kafka import KafkaEventLog
        from tests.support.kafka_broker import kafka_bootstrap

        event_log = KafkaEventLog(kafka_bootstrap())
    await event_log.start()
    try:
        yield event_log
    finally:
        await event_log.close()


@pytest.fixture
def new_topic(eventlog: EventLog) -> Callable[[int], Awaitable[str]]:
    """Provision a uniquely named topic (the Kafka broker is shared across tests)."""

    async def make(partitions: int = 3) -> str:
        name = f"t-{uuid.uuid4().hex[:12]}"
        await eventlog.ensure_topics([TopicSpec(name, partitions)])
        return name

    return make

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import EventLog


@pytest.fixture(params=["embedded", "kafka"])
def log_settings(request: pytest.FixtureRequest) -> str | None:
    """The Kafka bootstrap address, or None for the embedded log."""
    if request.param == "embedded":
        return None
    from tests.support.kafka_broker import kafka_bootstrap

    return kafka_bootstrap()


@pytest.fixture
async def eventlog(log_settings: str | None, pg_url: str) -> AsyncIterator[EventLog]:
    event_log: EventLog
    if log_settings is None:
        event_log = EmbeddedEventLog(pg_url, heartbeat_interval=0.3, session_timeout=3.0)
    else:
        from hartonomous.eventlog.kafka import KafkaEventLog

        event_log = KafkaEventLog(log_settings)
    await event_log.start()
    try:
        yield event_log
    finally:
        await event_log.close()

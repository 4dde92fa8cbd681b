"""Adapter selection: the only place that knows which engines exist (configuration only)."""

from __future__ import annotations

from hartonomous.eventlog.port import EventLog
from hartonomous.settings import Settings


def open_event_log(
    settings: Settings, postgres_url: str, client_id: str = "hartonomous"
) -> EventLog:
    """Kafka when a bootstrap address is configured, else the log inside Postgres."""
    if settings.kafka_bootstrap:
        from hartonomous.eventlog.kafka import KafkaEventLog

        kafka: EventLog = KafkaEventLog(settings.kafka_bootstrap, client_id=client_id)
        return kafka
    from hartonomous.eventlog.embedded import EmbeddedEventLog

    return EmbeddedEventLog(postgres_url)

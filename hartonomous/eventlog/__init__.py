"""The event log: the port and its adapters; `open_event_log` picks one from settings
(configuration only): Kafka when HARTONOMOUS_KAFKA_BOOTSTRAP is set, else the log inside
Postgres."""

from __future__ import annotations

from hartonomous.eventlog.port import EventLog
from hartonomous.settings import Settings

__all__ = ["EventLog", "open_event_log"]


def open_event_log(
    settings: Settings, postgres_url: str, client_id: str = "hartonomous"
) -> EventLog:
    if settings.kafka_bootstrap:
        from hartonomous.eventlog.kafka import KafkaEventLog

        return KafkaEventLog(settings.kafka_bootstrap, client_id=client_id)
    from hartonomous.eventlog.embedded import EmbeddedEventLog

    return EmbeddedEventLog(postgres_url)

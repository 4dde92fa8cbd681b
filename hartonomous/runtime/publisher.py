"""The one way a service appends events: typed payload -> envelope -> record -> append.

Where an event goes is declared once, in its `.avsc` (`"topic"`, and `"key"`: the payload field
that keys the record, so an aggregate's events stay ordered in one partition). Several events
published together are one atomic append: all of them become visible, or none does (an
operation and the usage that bills it, DESIGN.md §3).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

from hartonomous.eventlog.port import EventLog, Position, Record
from hartonomous.events import AvroCodec, Envelope, Event, encode_event
from hartonomous.events.payloads import Payload

P = TypeVar("P", bound=Payload)


class Publisher:
    def __init__(self, event_log: EventLog, codec: AvroCodec, produced_by: str) -> None:
        self._event_log = event_log
        self._codec = codec
        self.produced_by = produced_by

    def new(
        self,
        payload: P,
        *,
        tenant_id: str,
        correlation_id: str | None = None,
        traceparent: str | None = None,
        event_id: str | None = None,
    ) -> Event[P]:
        """An event that starts a chain (its own correlation id unless one is given). Pass
        `event_id` for an event that may be appended more than once (events.named_event_id)."""
        envelope = Envelope.new(
            type(payload).__name__,
            tenant_id,
            self.produced_by,
            correlation_id=correlation_id,
            traceparent=traceparent,
        )
        if event_id is not None:
            envelope = replace(
                envelope, event_id=event_id, correlation_id=correlation_id or event_id
            )
        return Event(envelope, payload)

    def caused(
        self,
        cause: Event[Any],
        payload: P,
        *,
        tenant_id: str | None = None,
        event_id: str | None = None,
    ) -> Event[P]:
        """An event `cause` led to: same correlation and trace (and tenant, unless given). Pass
        `event_id` (events.derived_event_id) when handling the cause again must give the same id."""
        envelope = cause.envelope.caused(type(payload).__name__, self.produced_by, tenant_id)
        if event_id is not None:
            envelope = replace(envelope, event_id=event_id)
        return Event(envelope, payload)

    def record(self, event: Event[Payload]) -> Record:
        """The log record of an event: its declared topic, keyed by its declared key field."""
        topic, key_field = self._codec.registry.route(event.event_type)
        return encode_event(self._codec, event, topic, getattr(event.payload, key_field))

    async def publish(self, *events: Event[Payload], within: float | None = None) -> list[Position]:
        """Append the events, atomically when there are several (raises with none appended);
        `within`: give up after that many seconds, with none appended (EventLog.append_atomic)."""
        records = [self.record(event) for event in events]
        if len(records) == 1 and within is None:
            return await self._event_log.append(records)
        return await self._event_log.append_atomic(records, within=within)

"""Real events for tests, built through the kernel's codec and the topics their schemas
declare."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import TypeVar

from hartonomous.eventlog.port import Record
from hartonomous.events import AvroCodec, Envelope, Event, encode_event
from hartonomous.events.payloads import Payload, UsageRecorded

P = TypeVar("P", bound=Payload)
CODEC = AvroCodec()


def new_event(
    payload: P, tenant_id: str, *, produced_by: str = "tests", correlation_id: str | None = None
) -> Event[P]:
    envelope = Envelope.new(
        type(payload).__name__, tenant_id, produced_by, correlation_id=correlation_id
    )
    return Event(envelope, payload)


def caused_event(cause: Event[Payload], payload: P, tenant_id: str | None = None) -> Event[P]:
    envelope = cause.envelope.caused(type(payload).__name__, cause.envelope.produced_by, tenant_id)
    return Event(envelope, payload)


def record_of(event: Event[Payload], topic: str | None = None) -> Record:
    """The record a publisher would append (on `topic` instead of the declared one if given)."""
    declared, key_field = CODEC.registry.route(event.event_type)
    return encode_event(CODEC, event, topic or declared, getattr(event.payload, key_field))


def usage(tenant: str, quantity: Decimal) -> UsageRecorded:
    return UsageRecorded(
        tenant_id=tenant,
        operation="embed",
        unit="tokens",
        quantity=quantity.quantize(Decimal("1e-9")),
        resource_id="minilm",
        used_at=datetime.now(UTC),
    )


def usage_record(codec: AvroCodec, topic: str, tenant: str, quantity: Decimal) -> Record:
    return encode_event(codec, new_event(usage(tenant, quantity), tenant), topic, tenant)

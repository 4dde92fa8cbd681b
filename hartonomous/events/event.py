"""An event = envelope + typed payload, and its mapping to and from log records."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Generic, TypeVar

from hartonomous.eventlog.port import Record, StoredRecord
from hartonomous.events.codec import AvroCodec
from hartonomous.events.envelope import Envelope
from hartonomous.events.errors import EventDecodeError
from hartonomous.events.payloads import EVENT_PAYLOADS, Payload, from_avro, to_avro

P = TypeVar("P", bound=Payload, covariant=True)


@dataclass(frozen=True)
class Event(Generic[P]):
    envelope: Envelope
    payload: P
    source: StoredRecord | None = field(default=None, compare=False)
    """The log record it was decoded from (where it sits, when the log took it); None for an
    event not read from the log."""

    def __post_init__(self) -> None:
        if type(self.payload).__name__ != self.envelope.event_type:
            raise ValueError(
                f"the payload is a {type(self.payload).__name__!r}, the envelope's event type"
                f" {self.envelope.event_type!r}"
            )

    @property
    def event_type(self) -> str:
        return self.envelope.event_type

    @property
    def logged(self) -> StoredRecord:
        """The record this event was read from (handlers only see events read from the log)."""
        if self.source is None:
            raise ValueError(f"this {self.event_type} event was not read from the log")
        return self.source


def encode_event(codec: AvroCodec, event: Event[Payload], topic: str, key: bytes | str) -> Record:
    """The record to append: Avro value, envelope in headers, key = the aggregate's id."""
    return Record(
        topic=topic,
        key=key.encode() if isinstance(key, str) else key,
        value=codec.encode(event.event_type, to_avro(event.payload)),
        headers=event.envelope.to_headers(),
    )


def decode_event(codec: AvroCodec, record: StoredRecord) -> Event[Payload]:
    envelope = Envelope.from_headers(record.headers)
    event_type, datum = codec.decode(record.value)
    if event_type != envelope.event_type:
        raise EventDecodeError(
            f"event_type header is {envelope.event_type!r} but the value is a {event_type!r}"
        )
    cls = EVENT_PAYLOADS.get(event_type)
    if cls is None:
        raise EventDecodeError(f"{event_type} has a schema but no payload class")
    return Event(envelope, from_avro(cls, datum), record)

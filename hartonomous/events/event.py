"""An event = envelope + payload, and its mapping to and from log records."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hartonomous.eventlog.port import Record, StoredRecord
from hartonomous.events.codec import AvroCodec
from hartonomous.events.envelope import Envelope
from hartonomous.events.errors import EventDecodeError


@dataclass(frozen=True)
class Event:
    envelope: Envelope
    payload: dict[str, Any]

    @property
    def event_type(self) -> str:
        return self.envelope.event_type


def encode_event(codec: AvroCodec, event: Event, topic: str, key: bytes | str) -> Record:
    """The record to append: Avro value, envelope in headers, key = the aggregate's id."""
    return Record(
        topic=topic,
        key=key.encode() if isinstance(key, str) else key,
        value=codec.encode(event.event_type, event.payload),
        headers=event.envelope.to_headers(),
    )


def decode_event(codec: AvroCodec, record: StoredRecord) -> Event:
    envelope = Envelope.from_headers(record.headers)
    event_type, payload = codec.decode(record.value)
    if event_type != envelope.event_type:
        raise EventDecodeError(
            f"event_type header is {envelope.event_type!r} but the value is a {event_type!r}"
        )
    return Event(envelope, payload)

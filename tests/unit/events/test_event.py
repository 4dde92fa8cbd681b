from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hartonomous.eventlog.port import StoredRecord
from hartonomous.events import (
    AvroCodec,
    Envelope,
    Event,
    EventDecodeError,
    decode_event,
    encode_event,
)
from hartonomous.events.payloads import AtomReferenced, to_avro

ATOM = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


def _event() -> Event[AtomReferenced]:
    envelope = Envelope.new("AtomReferenced", "tenant-a", "ingest")
    return Event(envelope, AtomReferenced(atom_id=ATOM, tenant_id="tenant-a", source_uri="a.txt"))


def _stored(topic: str, key: bytes, value: bytes, headers: dict[str, str]) -> StoredRecord:
    return StoredRecord(topic, 0, 17, datetime.now(UTC), key, value, headers)


def test_encode_event_builds_the_record(codec: AvroCodec) -> None:
    event = _event()
    assert event.event_type == "AtomReferenced"
    record = encode_event(codec, event, "atoms", ATOM)
    assert record.topic == "atoms"
    assert record.key == ATOM.encode()
    assert record.headers == event.envelope.to_headers()
    assert codec.decode(record.value) == ("AtomReferenced", to_avro(event.payload))
    assert encode_event(codec, event, "atoms", b"raw-key").key == b"raw-key"


def test_decode_event_round_trip(codec: AvroCodec) -> None:
    event = _event()
    record = encode_event(codec, event, "atoms", ATOM)
    stored = _stored(record.topic, record.key, record.value, dict(record.headers))
    decoded = decode_event(codec, stored)
    assert decoded == event
    assert decoded.logged is stored  # a decoded event knows where it sits in the log


def test_a_payload_must_be_of_its_envelope_type() -> None:
    envelope = Envelope.new("AtomIngested", "tenant-a", "ingest")
    with pytest.raises(
        ValueError, match="payload is a 'AtomReferenced', the envelope's event type 'AtomIngested'"
    ):
        Event(envelope, _event().payload)
    with pytest.raises(ValueError, match="was not read from the log"):
        _ = _event().logged


def test_header_type_must_match_the_value(codec: AvroCodec) -> None:
    event = _event()
    record = encode_event(codec, event, "atoms", ATOM)
    headers = {**record.headers, "event_type": "AtomIngested"}
    with pytest.raises(
        EventDecodeError, match="'AtomIngested' but the value is a 'AtomReferenced'"
    ):
        decode_event(codec, _stored("atoms", record.key, record.value, headers))


def test_missing_headers_or_bad_value_raise(codec: AvroCodec) -> None:
    record = encode_event(codec, _event(), "atoms", ATOM)
    with pytest.raises(EventDecodeError, match="missing envelope headers"):
        decode_event(codec, _stored("atoms", record.key, record.value, {}))
    with pytest.raises(EventDecodeError, match="wrong magic"):
        decode_event(codec, _stored("atoms", record.key, b"not avro at all", dict(record.headers)))

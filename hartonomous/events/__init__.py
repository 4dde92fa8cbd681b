"""Event contracts: the envelope, UUIDv7 ids and the Avro single-object codec (DESIGN.md §3)."""

from hartonomous.events.codec import AvroCodec
from hartonomous.events.envelope import Envelope
from hartonomous.events.errors import EventDecodeError, EventEncodeError
from hartonomous.events.event import Event, decode_event, encode_event
from hartonomous.events.ids import derived_event_id, named_event_id, new_event_id
from hartonomous.events.registry import SchemaRegistry
from hartonomous.events.usage import usage_quantity

__all__ = [
    "AvroCodec",
    "Envelope",
    "Event",
    "EventDecodeError",
    "EventEncodeError",
    "SchemaRegistry",
    "decode_event",
    "derived_event_id",
    "encode_event",
    "named_event_id",
    "new_event_id",
    "usage_quantity",
]

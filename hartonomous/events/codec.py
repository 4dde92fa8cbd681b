"""Avro single-object encoding of event payloads (DESIGN.md §3).

Wire format (Avro spec): b"\\xC3\\x01" + 8-byte little-endian CRC-64-AVRO fingerprint of the
writer schema + the Avro binary body. The fingerprint finds the writer schema in the registry;
the body is then resolved to the reader's schema version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Any, cast

from fastavro import schemaless_reader, schemaless_writer

from hartonomous.events.errors import EventDecodeError, EventEncodeError
from hartonomous.events.registry import RegisteredSchema, SchemaRegistry

MAGIC = b"\xc3\x01"
_HEADER_LEN = len(MAGIC) + 8


@dataclass(frozen=True)
class _Decoder:
    event_type: str
    writer: dict[str, Any]
    reader: dict[str, Any] | None  # None: the writer is the current schema, no resolution needed


class AvroCodec:
    def __init__(self, registry: SchemaRegistry | None = None) -> None:
        self._registry = SchemaRegistry() if registry is None else registry
        # Everything decode needs, per fingerprint, worked out once (decode is on every hot path).
        self._decoders = {
            entry.fingerprint: self._decoder(entry) for entry in self._registry.writers()
        }

    def _decoder(self, entry: RegisteredSchema) -> _Decoder:
        if entry.event_type not in self._registry.event_types():
            return _Decoder(entry.event_type, entry.schema, None)
        current = self._registry.current(entry.event_type)
        reader = None if current.fingerprint == entry.fingerprint else current.schema
        return _Decoder(entry.event_type, entry.schema, reader)

    @property
    def registry(self) -> SchemaRegistry:
        return self._registry

    def encode(self, event_type: str, payload: Mapping[str, Any]) -> bytes:
        """Encode with the event type's current schema. Unknown fields are rejected (they would be
        dropped silently); fields with a default may be left out."""
        try:
            entry = self._registry.current(event_type)
        except KeyError:
            known = ", ".join(self._registry.event_types())
            raise EventEncodeError(f"unknown event type {event_type!r} (known: {known})") from None
        if not isinstance(payload, Mapping):
            raise EventEncodeError(
                f"{event_type} payload must be a mapping, got {type(payload).__name__}"
            )
        out = BytesIO()
        out.write(MAGIC)
        out.write(entry.fingerprint)
        try:
            schemaless_writer(out, entry.schema, payload, strict_allow_default=True)
        except Exception as exc:  # fastavro signals a bad datum with assorted exception types
            raise EventEncodeError(f"invalid {event_type} payload: {exc}") from exc
        return out.getvalue()

    def decode(
        self, data: bytes, reader_schema: dict[str, Any] | None = None
    ) -> tuple[str, dict[str, Any]]:
        """Decode single-object bytes into (event_type, payload), resolved to `reader_schema` or by
        default to the current schema of the writer's event type. Pass a parsed reader schema
        (e.g. `registry.schema(...)`) so it is not re-parsed per call."""
        if len(data) < _HEADER_LEN:
            raise EventDecodeError(
                f"{len(data)} bytes is shorter than the {_HEADER_LEN}-byte single-object header"
            )
        if data[:2] != MAGIC:
            raise EventDecodeError(
                f"wrong magic {data[:2].hex()}, expected c301 (Avro single-object encoding)"
            )
        fingerprint = data[2:_HEADER_LEN]
        decoder = self._decoders.get(fingerprint)
        if decoder is None:
            raise EventDecodeError(f"unknown writer schema fingerprint {fingerprint.hex()}")
        reader = decoder.reader if reader_schema is None else reader_schema
        body = BytesIO(data)
        body.seek(_HEADER_LEN)
        # Truncated or garbage bodies surface as EOF, index, unicode or resolution errors.
        try:
            payload = schemaless_reader(body, decoder.writer, reader)
        except Exception as exc:
            raise EventDecodeError(
                f"cannot decode {decoder.event_type} body: {type(exc).__name__}: {exc}"
            ) from exc
        if body.tell() != len(data):
            raise EventDecodeError(
                f"{len(data) - body.tell()} trailing bytes after the {decoder.event_type} body"
            )
        return decoder.event_type, cast(dict[str, Any], payload)  # the writer schema is a record

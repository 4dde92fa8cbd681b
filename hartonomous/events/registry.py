"""The schema folder, indexed by event type and by CRC-64-AVRO fingerprint.

Layout: `<dir>/<EventType>.avsc` is the current schema of each event type (what producers write,
what consumers read into). Besides Avro's own attributes it declares where the event goes:
`"topic"` (one of the domain topics) and `"key"` (the payload field that is the record key, the
aggregate's id). Avro ignores both: they are not part of the fingerprint. `<dir>/history/*.avsc` holds retired versions of those schemas: they
are never written again, but records in the log (infinite retention) still carry their
fingerprints, so they stay loadable as writer schemas. Changing a schema therefore means moving
the old file into history/ and editing the new one compatibly.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastavro.schema import fingerprint as avro_fingerprint
from fastavro.schema import parse_schema, to_parsing_canonical_form

from hartonomous.eventlog.topics import DOMAIN_TOPICS

NAMESPACE = "hartonomous.events.v1"
DEFAULT_SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "avro"


@dataclass(frozen=True)
class RegisteredSchema:
    event_type: str
    fingerprint: bytes
    schema: dict[str, Any]  # parsed by fastavro once, reused on every encode/decode
    path: Path
    topic: str | None  # where events of this type are appended (None: a retired version)
    key: str | None  # the payload field whose value is the record key


def schema_fingerprint(schema: dict[str, Any]) -> bytes:
    """The 8 bytes the Avro single-object header carries: CRC-64-AVRO of the parsing canonical
    form, little-endian (fastavro's hex digest is already in that byte order)."""
    return bytes.fromhex(avro_fingerprint(to_parsing_canonical_form(schema), "CRC-64-AVRO"))


def _load(path: Path) -> RegisteredSchema:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        parsed = parse_schema(raw)
    except Exception as exc:  # json and fastavro raise assorted types for a broken file
        raise ValueError(f"{path}: not a valid Avro schema: {exc}") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise ValueError(f"{path}: an event schema must be an Avro record")
    # fastavro folds the namespace into the full name.
    namespace, _, event_type = str(parsed["name"]).rpartition(".")
    if namespace != NAMESPACE:
        raise ValueError(f"{path}: namespace must be {NAMESPACE!r}, got {namespace!r}")
    topic, key = raw.get("topic"), raw.get("key")
    return RegisteredSchema(event_type, schema_fingerprint(parsed), parsed, path, topic, key)


def _check_route(entry: RegisteredSchema) -> None:
    if entry.topic not in DOMAIN_TOPICS:
        raise ValueError(
            f'{entry.path}: "topic" must be one of {DOMAIN_TOPICS}, not {entry.topic!r}'
        )
    strings = [f["name"] for f in entry.schema["fields"] if f["type"] == "string"]
    if entry.key not in strings:
        raise ValueError(f'{entry.path}: "key" must name a string field, one of {strings}')


class SchemaRegistry:
    def __init__(self, schema_dir: Path | None = None) -> None:
        directory = DEFAULT_SCHEMA_DIR if schema_dir is None else schema_dir
        if not directory.is_dir():
            raise ValueError(f"schema folder {directory} does not exist")
        self._current: dict[str, RegisteredSchema] = {}
        self._writers: dict[bytes, RegisteredSchema] = {}
        for path in sorted(directory.glob("*.avsc")):
            entry = _load(path)
            if entry.event_type != path.stem:
                raise ValueError(
                    f"{path}: record name {entry.event_type!r} must match the file name"
                )
            _check_route(entry)
            self._current[entry.event_type] = entry
            self._add_writer(entry)
        for path in sorted((directory / "history").glob("*.avsc")):
            self._add_writer(_load(path))
        if not self._current:
            raise ValueError(f"no .avsc schemas in {directory}")

    def _add_writer(self, entry: RegisteredSchema) -> None:
        known = self._writers.setdefault(entry.fingerprint, entry)
        if known.event_type != entry.event_type:
            # Only possible on a CRC-64 collision; decoding would be ambiguous.
            raise ValueError(
                f"{entry.path} and {known.path} share fingerprint {entry.fingerprint.hex()}"
            )

    def event_types(self) -> list[str]:
        return sorted(self._current)

    def current(self, event_type: str) -> RegisteredSchema:
        try:
            return self._current[event_type]
        except KeyError:
            raise KeyError(f"unknown event type {event_type!r}") from None

    def fingerprint(self, event_type: str) -> bytes:
        return self.current(event_type).fingerprint

    def schema(self, event_type: str) -> dict[str, Any]:
        """The current parsed schema of an event type: a ready reader schema for decode."""
        return self.current(event_type).schema

    def route(self, event_type: str) -> tuple[str, str]:
        """(topic, key field) of an event type: where its events are appended, keyed by what."""
        entry = self.current(event_type)
        assert entry.topic is not None and entry.key is not None  # checked on load
        return entry.topic, entry.key

    def writer(self, fingerprint: bytes) -> RegisteredSchema | None:
        """The schema (current or retired) that wrote records with this fingerprint."""
        return self._writers.get(fingerprint)

    def writers(self) -> list[RegisteredSchema]:
        return list(self._writers.values())

"""Every event type has a typed payload class that is its `.avsc` field for field: same names in
the same order, Python types that hold what Avro decodes, the same defaults; and a payload
survives the trip through the codec unchanged."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Union, get_args, get_origin, get_type_hints

import pytest

from hartonomous.eventlog.port import StoredRecord
from hartonomous.events import AvroCodec, Envelope, Event, decode_event, encode_event
from hartonomous.events.payloads import EVENT_PAYLOADS, Payload
from hartonomous.events.registry import SchemaRegistry

REGISTRY = SchemaRegistry()
CODEC = AvroCodec(REGISTRY)
PRIMITIVES: dict[str, type] = {
    "string": str,
    "int": int,
    "long": int,
    "float": float,
    "double": float,
    "boolean": bool,
}


def python_type(schema: Any) -> Any:
    """The Python type a payload field must declare for an Avro schema."""
    if isinstance(schema, str):
        return PRIMITIVES[schema]
    if isinstance(schema, list):
        (inner,) = [s for s in schema if s != "null"]
        return python_type(inner) | None
    logical = schema.get("logicalType")
    if logical == "decimal":
        return Decimal
    if logical == "timestamp-millis":
        return datetime
    kind = schema["type"]
    if kind == "array":
        return list[python_type(schema["items"])]  # type: ignore[misc]
    if kind == "map":
        return dict[str, python_type(schema["values"])]  # type: ignore[misc]
    if kind == "record":
        return schema["name"].rpartition(".")[2]  # a nested payload class, by name
    return python_type(kind)


def same_type(declared: Any, expected: Any) -> bool:
    if isinstance(expected, str):
        return isinstance(declared, type) and declared.__name__ == expected
    if get_origin(expected) in (list, dict):
        return get_origin(declared) is get_origin(expected) and all(
            same_type(d, e) for d, e in zip(get_args(declared), get_args(expected), strict=True)
        )
    if get_origin(expected) in (Union, type(int | None)):
        return set(get_args(declared)) == set(get_args(expected))
    return bool(declared is expected)


def check_record(cls: type[Payload], schema: dict[str, Any]) -> None:
    hints = get_type_hints(cls)
    fields = dataclasses.fields(cls)
    assert [f.name for f in fields] == [f["name"] for f in schema["fields"]], cls.__name__
    for field, avro in zip(fields, schema["fields"], strict=True):
        expected = python_type(avro["type"])
        assert same_type(hints[field.name], expected), (cls.__name__, field.name, expected)
        has_default = (
            field.default is not dataclasses.MISSING
            or field.default_factory is not dataclasses.MISSING
        )
        assert has_default == ("default" in avro), (cls.__name__, field.name)
        if "default" in avro:
            default = (
                field.default_factory()  # type: ignore[misc]
                if field.default_factory is not dataclasses.MISSING
                else field.default
            )
            assert default == avro["default"], (cls.__name__, field.name)
        nested = avro["type"].get("items") if isinstance(avro["type"], dict) else None
        if isinstance(nested, dict) and nested.get("type") == "record":
            check_record(get_args(hints[field.name])[0], nested)


def test_every_event_type_has_a_payload_class_and_no_class_lacks_a_schema() -> None:
    assert sorted(EVENT_PAYLOADS) == REGISTRY.event_types()


@pytest.mark.parametrize("event_type", REGISTRY.event_types())
def test_a_payload_class_is_its_schema_field_for_field(event_type: str) -> None:
    check_record(EVENT_PAYLOADS[event_type], REGISTRY.schema(event_type))


def sample(cls: type[Payload]) -> Payload:
    """A payload with a value in every field (nested records included)."""
    hints = get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):
        hint = hints[field.name]
        if get_origin(hint) in (Union, type(int | None)):  # optional: the value's type
            (hint,) = [a for a in get_args(hint) if a is not type(None)]
        kind = get_origin(hint) or hint
        if kind is list:
            (item,) = get_args(hint)
            values[field.name] = [sample(item) if issubclass(item, Payload) else item(1)] * 2
        elif kind is dict:
            values[field.name] = {"k": "v"}
        elif kind is datetime:
            values[field.name] = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
        elif kind is Decimal:
            values[field.name] = Decimal("12.345000000")
        elif kind is bool:
            values[field.name] = True
        elif kind is float:
            values[field.name] = 0.5
        else:
            values[field.name] = kind(7) if kind is int else f"{field.name}-value"
    return cls(**values)


@pytest.mark.parametrize("event_type", REGISTRY.event_types())
def test_a_payload_round_trips_through_the_codec_unchanged(event_type: str) -> None:
    payload = sample(EVENT_PAYLOADS[event_type])
    event = Event(Envelope.new(event_type, "acme", "tests"), payload)
    topic, key_field = REGISTRY.route(event_type)
    record = encode_event(CODEC, event, topic, getattr(payload, key_field))
    stored = StoredRecord(topic, 0, 0, datetime.now(UTC), record.key, record.value, record.headers)
    assert decode_event(CODEC, stored).payload == payload


@dataclasses.dataclass(frozen=True, kw_only=True)
class MisspeltUsage(Payload):
    tenant: str  # not tenant_id


def test_the_field_check_finds_a_misspelt_field() -> None:
    with pytest.raises(AssertionError, match="MisspeltUsage"):
        check_record(MisspeltUsage, REGISTRY.schema("UsageRecorded"))

from __future__ import annotations

import io
import json
import random
import shutil
import struct
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema, schemaless_reader

from hartonomous.events import AvroCodec, EventDecodeError, EventEncodeError, SchemaRegistry
from hartonomous.events.registry import DEFAULT_SCHEMA_DIR

SCHEMA_FILES = sorted(DEFAULT_SCHEMA_DIR.glob("*.avsc"))
WHEN = datetime(2024, 5, 1, 12, 30, 15, 123000, tzinfo=UTC)  # whole milliseconds survive
PRIMITIVE_SAMPLES: dict[str, Any] = {
    "string": "välue ✓",
    "int": 42,
    "long": 2**40 + 7,
    "float": 0.5,  # exactly representable in float32
    "double": 0.1,
    "boolean": True,
    "bytes": b"\x00\xff",
}


def sample(schema: Any, *, optional_null: bool = False) -> Any:
    """A valid value for any schema used in the event folder."""
    if isinstance(schema, str):
        return PRIMITIVE_SAMPLES[schema]
    if isinstance(schema, list):
        if optional_null:
            return None
        return sample(next(s for s in schema if s != "null"), optional_null=optional_null)
    logical = schema.get("logicalType")
    if logical == "decimal":
        return Decimal("12345678901234567890.123456789")
    if logical == "timestamp-millis":
        return WHEN
    kind = schema["type"]
    if kind == "record":
        return {f["name"]: sample(f["type"], optional_null=optional_null) for f in schema["fields"]}
    if kind == "array":
        return [sample(schema["items"], optional_null=optional_null) for _ in range(3)]
    if kind == "map":
        return {"k1": sample(schema["values"]), "k2": sample(schema["values"])}
    return sample(kind, optional_null=optional_null)


def _raw(path: Path) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads(path.read_text())
    return raw


@pytest.fixture(scope="module")
def codec() -> AvroCodec:
    return AvroCodec()


@pytest.mark.parametrize("optional_null", [False, True], ids=["filled", "nulls"])
@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.stem)
def test_round_trip_every_schema(codec: AvroCodec, path: Path, optional_null: bool) -> None:
    payload = sample(_raw(path), optional_null=optional_null)
    data = codec.encode(path.stem, payload)
    assert data[:2] == b"\xc3\x01"
    assert data[2:10] == codec.registry.fingerprint(path.stem)
    assert codec.decode(data) == (path.stem, payload)


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=lambda p: p.stem)
def test_body_is_plain_avro_binary(codec: AvroCodec, path: Path) -> None:
    # Any Avro implementation can read the body with the .avsc file: nothing proprietary.
    payload = sample(_raw(path))
    body = codec.encode(path.stem, payload)[10:]
    assert schemaless_reader(io.BytesIO(body), parse_schema(_raw(path))) == payload


def test_fields_with_defaults_may_be_left_out(codec: AvroCodec) -> None:
    payload = {
        "atom_id": "ab" * 32,
        "tenant_id": "t",
        "modality": "text",
        "mime_type": "text/plain",
        "size_bytes": 5,
        "blob_key": "blobs/ab",
    }
    _, decoded = codec.decode(codec.encode("AtomIngested", payload))
    assert decoded == {**payload, "source_uri": None, "metadata_json": "{}"}


def test_decimal_quantity_is_exact(codec: AvroCodec) -> None:
    base = sample(_raw(DEFAULT_SCHEMA_DIR / "UsageRecorded.avsc"))
    for quantity in ("0.000000001", "0.1", "-3", "99999999999999999999999999999.999999999"):
        _, decoded = codec.decode(
            codec.encode("UsageRecorded", {**base, "quantity": Decimal(quantity)})
        )
        assert decoded["quantity"] == Decimal(quantity)
        assert isinstance(decoded["quantity"], Decimal)


def test_vector_is_float32(codec: AvroCodec) -> None:
    payload = {
        **sample(_raw(DEFAULT_SCHEMA_DIR / "EmbeddingComputed.avsc")),
        "vector": [0.1, -1.0 / 3],
    }
    _, decoded = codec.decode(codec.encode("EmbeddingComputed", payload))
    assert decoded["vector"] == [
        struct.unpack("<f", struct.pack("<f", v))[0] for v in payload["vector"]
    ]


# --- schema evolution ---------------------------------------------------------------------------


def _evolved_folder(tmp_path: Path) -> Path:
    """AtomIngested gains an optional field; the version in the repo moves to history/."""
    (tmp_path / "history").mkdir()
    shutil.copy(
        DEFAULT_SCHEMA_DIR / "AtomIngested.avsc", tmp_path / "history" / "AtomIngested.1.avsc"
    )
    new = _raw(DEFAULT_SCHEMA_DIR / "AtomIngested.avsc")
    new["fields"].append(
        {"name": "language", "type": ["null", "string"], "default": None, "doc": "BCP 47 tag."}
    )
    (tmp_path / "AtomIngested.avsc").write_text(json.dumps(new))
    return tmp_path


def test_old_writer_read_by_current_reader_gets_default(codec: AvroCodec, tmp_path: Path) -> None:
    old_payload = sample(_raw(DEFAULT_SCHEMA_DIR / "AtomIngested.avsc"))
    old_bytes = codec.encode("AtomIngested", old_payload)
    evolved = AvroCodec(SchemaRegistry(_evolved_folder(tmp_path)))
    assert evolved.registry.fingerprint("AtomIngested") != old_bytes[2:10]

    assert evolved.decode(old_bytes) == ("AtomIngested", {**old_payload, "language": None})

    new_bytes = evolved.encode("AtomIngested", {**old_payload, "language": "en"})
    assert evolved.decode(new_bytes)[1]["language"] == "en"
    # A reader on the old version cannot know the new writer: it must fail loudly, not guess.
    with pytest.raises(EventDecodeError, match="unknown writer schema fingerprint"):
        codec.decode(new_bytes)


def test_explicit_reader_schema(codec: AvroCodec, tmp_path: Path) -> None:
    payload = sample(_raw(DEFAULT_SCHEMA_DIR / "AtomIngested.avsc"))
    data = codec.encode("AtomIngested", payload)
    newer = SchemaRegistry(_evolved_folder(tmp_path)).schema("AtomIngested")
    assert codec.decode(data, reader_schema=newer) == (
        "AtomIngested",
        {**payload, "language": None},
    )

    # A reader narrower than the writer drops the fields it does not know (raw dicts work too).
    narrow = _raw(DEFAULT_SCHEMA_DIR / "AtomIngested.avsc")
    narrow["fields"] = [f for f in narrow["fields"] if f["name"] in ("atom_id", "size_bytes")]
    decoded = codec.decode(data, reader_schema=narrow)[1]
    assert decoded == {"atom_id": payload["atom_id"], "size_bytes": payload["size_bytes"]}


def test_incompatible_reader_raises_decode_error(codec: AvroCodec) -> None:
    data = codec.encode("AtomIngested", sample(_raw(DEFAULT_SCHEMA_DIR / "AtomIngested.avsc")))
    required_new = _raw(DEFAULT_SCHEMA_DIR / "AtomIngested.avsc")
    required_new["fields"].append({"name": "language", "type": "string"})  # no default
    with pytest.raises(EventDecodeError, match="cannot decode AtomIngested"):
        codec.decode(data, reader_schema=required_new)


def test_retired_event_type_still_decodes(codec: AvroCodec, tmp_path: Path) -> None:
    # An event type no longer produced (only in history/) must stay readable from the ledger.
    shutil.copy(DEFAULT_SCHEMA_DIR / "ConfigChanged.avsc", tmp_path)
    (tmp_path / "history").mkdir()
    shutil.copy(DEFAULT_SCHEMA_DIR / "AtomReferenced.avsc", tmp_path / "history")
    retired = AvroCodec(SchemaRegistry(tmp_path))
    assert retired.registry.event_types() == ["ConfigChanged"]
    payload = sample(_raw(DEFAULT_SCHEMA_DIR / "AtomReferenced.avsc"))
    assert retired.decode(codec.encode("AtomReferenced", payload)) == ("AtomReferenced", payload)
    with pytest.raises(EventEncodeError, match="unknown event type 'AtomReferenced'"):
        retired.encode("AtomReferenced", payload)


# --- undecodable bytes ---------------------------------------------------------------------------


def test_every_truncation_raises(codec: AvroCodec) -> None:
    for path in SCHEMA_FILES:
        data = codec.encode(path.stem, sample(_raw(path)))
        for end in range(len(data)):
            with pytest.raises(EventDecodeError):
                codec.decode(data[:end])


def test_short_input_message(codec: AvroCodec) -> None:
    with pytest.raises(EventDecodeError, match="shorter than the 10-byte"):
        codec.decode(b"\xc3\x01\x00")


def test_wrong_magic(codec: AvroCodec) -> None:
    data = codec.encode("ConfigChanged", sample(_raw(DEFAULT_SCHEMA_DIR / "ConfigChanged.avsc")))
    with pytest.raises(EventDecodeError, match="wrong magic 4f62"):
        codec.decode(b"Ob" + data[2:])  # e.g. an Avro object container file ("Obj\x01")


def test_unknown_fingerprint(codec: AvroCodec) -> None:
    data = codec.encode("ConfigChanged", sample(_raw(DEFAULT_SCHEMA_DIR / "ConfigChanged.avsc")))
    forged = data[:2] + bytes(8) + data[10:]
    with pytest.raises(
        EventDecodeError, match="unknown writer schema fingerprint 0000000000000000"
    ):
        codec.decode(forged)


def test_trailing_bytes(codec: AvroCodec) -> None:
    data = codec.encode("ConfigChanged", sample(_raw(DEFAULT_SCHEMA_DIR / "ConfigChanged.avsc")))
    with pytest.raises(EventDecodeError, match="2 trailing bytes"):
        codec.decode(data + b"\x00\x00")


def test_garbage_raises(codec: AvroCodec) -> None:
    rng = random.Random(1234)
    fingerprints = [codec.registry.fingerprint(t) for t in codec.registry.event_types()]
    for _ in range(500):
        garbage = rng.randbytes(rng.randrange(0, 200))
        with pytest.raises(EventDecodeError):
            codec.decode(garbage)
        # Garbage behind a valid header exercises the body decoder itself.
        with pytest.raises(EventDecodeError):
            codec.decode(b"\xc3\x01" + rng.choice(fingerprints) + garbage)


# --- invalid payloads ----------------------------------------------------------------------------


def _config() -> dict[str, Any]:
    payload: dict[str, Any] = sample(_raw(DEFAULT_SCHEMA_DIR / "ConfigChanged.avsc"))
    return payload


def _usage() -> dict[str, Any]:
    payload: dict[str, Any] = sample(_raw(DEFAULT_SCHEMA_DIR / "UsageRecorded.avsc"))
    return payload


@pytest.mark.parametrize(
    ("event_type", "payload", "message"),
    [
        ("ConfigChanged", {**_config(), "new_value": 3}, "new_value"),
        ("ConfigChanged", {k: v for k, v in _config().items() if k != "reason"}, "reason"),
        ("ConfigChanged", {**_config(), "new_valeu": "x"}, "new_valeu"),
        ("ConfigChanged", {**_config(), "old_value": 1.5}, "old_value"),
        ("UsageRecorded", {**_usage(), "quantity": 1.5}, "quantity"),
        ("UsageRecorded", {**_usage(), "quantity": Decimal("0.0000000001")}, "[Ss]cale"),
        ("UsageRecorded", {**_usage(), "used_at": "yesterday"}, "used_at"),
        ("UsageRecorded", {**_usage(), "dimensions": {"device": 1}}, "dimensions"),
    ],
    ids=[
        "wrong-type",
        "missing-field",
        "unknown-field",
        "wrong-optional-type",
        "float-money",
        "too-many-decimals",
        "bad-timestamp",
        "bad-map-value",
    ],
)
def test_invalid_payload_raises_clear_error(
    codec: AvroCodec, event_type: str, payload: dict[str, Any], message: str
) -> None:
    with pytest.raises(EventEncodeError, match=f"invalid {event_type} payload") as info:
        codec.encode(event_type, payload)
    assert isinstance(info.value, ValueError)
    assert info.match(message)


def test_unknown_event_type_on_encode(codec: AvroCodec) -> None:
    with pytest.raises(
        EventEncodeError, match=r"unknown event type 'Nope' \(known: ActionConfirmed, "
    ):
        codec.encode("Nope", {})


def test_non_mapping_payload(codec: AvroCodec) -> None:
    with pytest.raises(EventEncodeError, match="must be a mapping, got list"):
        codec.encode("ConfigChanged", [])  # type: ignore[arg-type]

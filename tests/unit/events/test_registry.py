from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from hartonomous.events import SchemaRegistry
from hartonomous.events.registry import DEFAULT_SCHEMA_DIR, NAMESPACE, schema_fingerprint

REQUIRED_TYPES = {
    "AtomIngested",
    "AtomReferenced",
    "AtomChunked",
    "EmbeddingComputed",
    "UsageRecorded",
    "SearchPerformed",
    "StorageMeasured",
    "TelemetryRecorded",
    "ConfigChanged",
}


def _raw(event_type: str) -> dict[str, Any]:
    raw: dict[str, Any] = json.loads((DEFAULT_SCHEMA_DIR / f"{event_type}.avsc").read_text())
    return raw


def _signed(fingerprint: bytes) -> int:
    return int.from_bytes(fingerprint, "little", signed=True)


def test_default_folder_holds_every_required_event_type() -> None:
    registry = SchemaRegistry()
    assert set(registry.event_types()) >= REQUIRED_TYPES
    assert registry.event_types() == sorted(p.stem for p in DEFAULT_SCHEMA_DIR.glob("*.avsc"))


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        # Vectors from the Avro project's share/test/data/schema-tests.txt (Java signed longs,
        # written little-endian in the single-object header).
        ({"type": "fixed", "name": "foo", "size": 15}, 1756455273707447556),
        (
            {"type": "record", "name": "foo", "fields": [{"name": "f1", "type": "boolean"}]},
            7843277075252814651,
        ),
    ],
)
def test_fingerprint_matches_avro_reference_vectors(schema: dict[str, Any], expected: int) -> None:
    fingerprint = schema_fingerprint(schema)
    assert len(fingerprint) == 8
    assert _signed(fingerprint) == expected


def test_fingerprints_are_distinct_and_ignore_docs() -> None:
    registry = SchemaRegistry()
    fingerprints = [registry.fingerprint(t) for t in registry.event_types()]
    assert len(set(fingerprints)) == len(fingerprints)
    undocumented = _raw("UsageRecorded")
    undocumented.pop("doc")
    for field in undocumented["fields"]:
        field.pop("doc")
    assert schema_fingerprint(undocumented) == registry.fingerprint("UsageRecorded")


def _check_documented(record: dict[str, Any], where: str) -> None:
    assert record.get("doc"), f"{where} has no doc"
    for field in record["fields"]:
        name = f"{where}.{field['name']}"
        assert field.get("doc"), f"{name} has no doc"
        ftype = field["type"]
        if isinstance(ftype, list):
            assert ftype[0] == "null" and len(ftype) == 2, f"{name}: optional = [null, T]"
            assert "default" in field and field["default"] is None, f"{name}: default null"
        nested = ftype.get("items") if isinstance(ftype, dict) else None
        if isinstance(nested, dict) and nested.get("type") == "record":
            _check_documented(nested, name)


@pytest.mark.parametrize("path", sorted(DEFAULT_SCHEMA_DIR.glob("*.avsc")), ids=lambda p: p.stem)
def test_schema_file_conventions(path: Path) -> None:
    raw = json.loads(path.read_text())
    assert raw["type"] == "record"
    assert raw["namespace"] == NAMESPACE
    assert raw["name"] == path.stem
    _check_documented(raw, path.stem)


def _field_types(event_type: str) -> dict[str, Any]:
    return {f["name"]: f["type"] for f in _raw(event_type)["fields"]}


def test_contract_fields_other_services_rely_on() -> None:
    embedding = _field_types("EmbeddingComputed")
    assert embedding["vector"] == {"type": "array", "items": "float"}
    assert embedding["dim"] == "int"
    assert {"atom_id", "tenant_id", "model_id", "model_version"} <= set(embedding)

    usage = _field_types("UsageRecorded")
    assert usage["quantity"]["logicalType"] == "decimal"  # exact, never a float
    assert {"tenant_id", "operation", "unit", "resource_id"} <= set(usage)

    telemetry = _field_types("TelemetryRecorded")
    assert {"service", "instance", "window_start", "window_end"} <= set(telemetry)
    operation = telemetry["operations"]["items"]
    assert {f["name"] for f in operation["fields"]} >= {"operation", "requests", "p95_ms"}
    assert telemetry["tunables"] == {"type": "map", "values": "string"}

    config = _field_types("ConfigChanged")
    assert {"key", "old_value", "new_value", "reason", "actor"} <= set(config)

    chunk = _field_types("AtomChunked")["chunks"]["items"]
    assert {f["name"] for f in chunk["fields"]} >= {"index", "atom_id", "start_char", "end_char"}

    for event_type in ("AtomIngested", "AtomReferenced"):
        assert {"atom_id", "tenant_id"} <= set(_field_types(event_type))


def test_unknown_event_type() -> None:
    with pytest.raises(KeyError, match="NoSuchEvent"):
        SchemaRegistry().fingerprint("NoSuchEvent")


def _write(folder: Path, name: str, schema: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps(schema))


def test_history_schemas_are_writers_only(tmp_path: Path) -> None:
    shutil.copy(DEFAULT_SCHEMA_DIR / "AtomReferenced.avsc", tmp_path)
    old = _raw("AtomReferenced")
    old["fields"] = old["fields"][:2]
    _write(tmp_path / "history", "AtomReferenced.0.avsc", old)
    registry = SchemaRegistry(tmp_path)
    assert registry.event_types() == ["AtomReferenced"]
    old_entry = registry.writer(schema_fingerprint(old))
    assert old_entry is not None and old_entry.event_type == "AtomReferenced"
    assert old_entry.fingerprint != registry.fingerprint("AtomReferenced")
    assert registry.writer(b"\x00" * 8) is None


@pytest.mark.parametrize(
    ("file_name", "change", "message"),
    [
        ("Other.avsc", {}, "must match the file name"),
        ("AtomReferenced.avsc", {"namespace": "elsewhere"}, "namespace"),
        ("AtomReferenced.avsc", {"type": "enum", "symbols": ["A"]}, "record"),
        ("AtomReferenced.avsc", {"fields": [{"name": "x", "type": "nope"}]}, "not a valid"),
    ],
)
def test_bad_schema_files_are_rejected(
    tmp_path: Path, file_name: str, change: dict[str, Any], message: str
) -> None:
    _write(tmp_path, file_name, {**_raw("AtomReferenced"), **change})
    with pytest.raises(ValueError, match=message):
        SchemaRegistry(tmp_path)


def test_empty_or_missing_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"no \.avsc"):
        SchemaRegistry(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        SchemaRegistry(tmp_path / "absent")

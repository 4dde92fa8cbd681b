"""The ingest header: what a valid one is, normalised (empty strings mean "not given")."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from hartonomous.tenants import parse_tenant_id
from services.ingest.domain.content import normalise_mime
from services.ingest.domain.errors import InvalidArgument

MAX_METADATA_BYTES = 16 * 1024
MAX_SOURCE_URI_CHARS = 2048
MODALITIES = frozenset({"text", "image", "audio", "video", "model", "tensor", "binary"})

_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class IngestHeader:
    tenant_id: str
    mime_type: str | None  # normalised media type, None: detect
    modality: str | None
    metadata_json: str  # canonical JSON object text
    source_uri: str | None
    expected_sha256: str | None
    traceparent: str | None
    request_id: str | None
    api_key_id: str | None


def parse_header(
    *,
    tenant_id: str,
    mime_type: str = "",
    modality: str = "",
    metadata_json: str = "",
    source_uri: str = "",
    expected_sha256: str = "",
    traceparent: str = "",
    request_id: str = "",
    api_key_id: str = "",
) -> IngestHeader:
    """Validate and normalise the header fields (empty strings mean "not given").
    Raises InvalidArgument naming the first problem."""
    return IngestHeader(
        tenant_id=parse_tenant_id(tenant_id),
        mime_type=normalise_mime(mime_type) if mime_type.strip() else None,
        modality=_parse_modality(modality),
        metadata_json=canonical_metadata(metadata_json),
        source_uri=_parse_source_uri(source_uri),
        expected_sha256=parse_atom_id(expected_sha256, "expected_sha256")
        if expected_sha256
        else None,
        traceparent=traceparent.strip() or None,
        request_id=request_id.strip() or None,
        api_key_id=api_key_id.strip() or None,
    )


def parse_atom_id(raw: str, field: str = "atom_id") -> str:
    atom_id = raw.strip().lower()
    if not _HEX.fullmatch(atom_id):
        raise InvalidArgument(f"{field} must be a SHA-256 hex digest (64 hex characters)")
    return atom_id


def canonical_metadata(raw: str) -> str:
    """The metadata as canonical JSON (sorted keys, no spaces), so equal metadata is equal text."""
    if not raw.strip():
        return "{}"
    if len(raw.encode()) > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata_json is over {MAX_METADATA_BYTES} bytes")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"metadata_json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"metadata_json must be a JSON object, got a {type(value).__name__} value"
        )
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse_modality(raw: str) -> str | None:
    modality = raw.strip().lower()
    if not modality:
        return None
    if modality not in MODALITIES:
        raise InvalidArgument(
            f"modality {raw!r} is not supported; use one of {', '.join(sorted(MODALITIES))}"
        )
    return modality


def _parse_source_uri(raw: str) -> str | None:
    uri = raw.strip()
    if len(uri) > MAX_SOURCE_URI_CHARS:
        raise InvalidArgument(f"source_uri is over {MAX_SOURCE_URI_CHARS} characters")
    return uri or None

"""What callers get back."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from services.ingest.domain.chunks import Chunk


@dataclass(frozen=True)
class IngestResult:
    atom_id: str
    deduplicated: bool
    modality: str
    mime_type: str
    size_bytes: int
    chunk_atom_ids: list[str]
    request_id: str


@dataclass(frozen=True)
class AtomView:
    """A catalog atom as one tenant sees it."""

    atom_id: str
    modality: str
    mime_type: str
    size_bytes: int
    metadata_json: str
    source_uri: str | None
    created_at: datetime
    chunker: str | None
    chunks: list[Chunk]


@dataclass(frozen=True)
class SharedTensors:
    """Another version of the tenant's holding some of the same tensor atoms."""

    name: str
    version: str
    tensors: int
    bytes: int


@dataclass(frozen=True)
class ModelVersionView:
    tenant_id: str
    name: str
    version: str
    manifest_atom_id: str
    format: str
    architecture: str | None
    source_sha256: str
    size_bytes: int
    tensors: int
    new_tensors: int  # that no version held before this one
    new_bytes: int
    shared_with: list[SharedTensors]
    ingested_at: datetime
    request_id: str


@dataclass(frozen=True)
class Promotion:
    version: str
    manifest_atom_id: str
    promoted_at: datetime
    previous_version: str | None
    reason: str | None


@dataclass(frozen=True)
class TensorPair:
    """One tensor name in two versions; None on the side that lacks it."""

    tensor: str
    from_atom_id: str | None
    to_atom_id: str | None
    from_bytes: int | None
    to_bytes: int | None


@dataclass(frozen=True)
class ModelView:
    """A name as of a moment: its versions, the promotions so far, the live version."""

    name: str
    as_of: datetime
    versions: list[ModelVersionView]
    promotions: list[Promotion]
    live: ModelVersionView | None
    manifest_json: str

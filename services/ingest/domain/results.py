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

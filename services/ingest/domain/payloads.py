"""The payloads of the events an ingest publishes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from hartonomous.events import usage_quantity
from hartonomous.events.payloads import (
    AtomChunked,
    AtomIngested,
    AtomReferenced,
    TextChunk,
    UsageRecorded,
)
from services.ingest.domain.chunks import Chunk
from services.ingest.domain.content import Content
from services.ingest.domain.header import IngestHeader
from services.ingest.domain.models.version import ModelHeader


def ingested_payload(atom_id: str, header: IngestHeader, content: Content) -> AtomIngested:
    return AtomIngested(
        atom_id=atom_id,
        tenant_id=header.tenant_id,
        modality=content.modality,
        mime_type=content.mime_type,
        size_bytes=content.size,
        blob_key=atom_id,
        source_uri=header.source_uri,
        metadata_json=header.metadata_json,
    )


def referenced_payload(atom_id: str, header: IngestHeader) -> AtomReferenced:
    return AtomReferenced(
        atom_id=atom_id,
        tenant_id=header.tenant_id,
        source_uri=header.source_uri,
        metadata_json=header.metadata_json,
    )


def chunked_payload(
    parent_id: str, tenant_id: str, chunker: str, chunks: Sequence[Chunk]
) -> AtomChunked:
    return AtomChunked(
        parent_atom_id=parent_id,
        tenant_id=tenant_id,
        chunker=chunker,
        chunks=[
            TextChunk(
                index=chunk.index,
                atom_id=chunk.atom_id,
                start_char=chunk.span.start_char,
                end_char=chunk.span.end_char,
                start_byte=chunk.span.start_byte,
                end_byte=chunk.span.end_byte,
            )
            for chunk in chunks
        ],
    )


def usage_payload(
    header: IngestHeader | ModelHeader,
    atom_id: str,
    size: int,
    deduplicated: bool,
    used_at: datetime,
) -> UsageRecorded:
    """Ingest is metered in bytes received; a dedup hit is marked so rate cards can price it."""
    return UsageRecorded(
        tenant_id=header.tenant_id,
        operation="ingest",
        unit="bytes",
        quantity=usage_quantity(size),
        resource_id=atom_id,
        used_at=used_at,
        api_key_id=header.api_key_id,
        dimensions={"deduplicated": "true" if deduplicated else "false"},
    )

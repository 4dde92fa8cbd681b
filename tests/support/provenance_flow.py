"""The events an ingest -> chunk -> embed flow appends, built through the kernel codec, as the
provenance tests need them: as log records to append, or as stored records to project."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal

from hartonomous.eventlog.port import Record, StoredRecord
from hartonomous.events import AvroCodec, Envelope, Event, encode_event
from hartonomous.events.payloads import (
    AtomChunked,
    AtomIngested,
    AtomReferenced,
    EmbeddingComputed,
    Payload,
    TextChunk,
    UsageRecorded,
)

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
MODEL_VERSION = hashlib.sha256(b"minilm weights, tokenizer and config").hexdigest()
CHUNKER = "recursive/v1 max_chars=40 overlap=0"
DIM = 4


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Keyed:
    """An event with the topic and key it is appended under."""

    topic: str
    key: str
    event: Event[Payload]


@dataclass
class Flow:
    tenant: str
    document: str  # the document's atom id
    source_uri: str
    request_id: str
    chunks: list[str]  # chunk atom ids in document order
    events: list[Keyed] = field(default_factory=list)


def _usage(env: Envelope, tenant: str, operation: str, resource: str) -> Event[UsageRecorded]:
    return Event(
        env.caused("UsageRecorded", env.produced_by, tenant),
        UsageRecorded(
            tenant_id=tenant,
            operation=operation,
            unit="requests",
            quantity=Decimal("1.000000000"),
            resource_id=resource,
            used_at=datetime.now(UTC),
            dimensions={"device": "cpu"},
        ),
    )


def _embedded(cause: Envelope, tenant: str, atom_id: str) -> Keyed:
    env = cause.caused("EmbeddingComputed", "inference", tenant)
    payload = EmbeddingComputed(
        atom_id=atom_id,
        tenant_id=tenant,
        model_id=MODEL_ID,
        model_version=MODEL_VERSION,
        dim=DIM,
        vector=[0.5, 0.5, 0.5, 0.5],
        normalized=True,
    )
    return Keyed("embeddings", atom_id, Event(env, payload))


def ingest_flow(tenant: str, text: str, source_uri: str, request_id: str) -> Flow:
    """AtomIngested + AtomChunked (two chunks) + usage, then an embedding per chunk and for the
    document + usage: what ingest and inference append for a new text."""
    document = sha256(text)
    half = len(text) // 2
    spans = [(0, half), (half, len(text))]
    chunk_ids = [sha256(text[a:b]) for a, b in spans]
    env = Envelope.new("AtomIngested", tenant, "ingest", correlation_id=request_id)
    ingested = Event(
        env,
        AtomIngested(
            atom_id=document,
            tenant_id=tenant,
            modality="text",
            mime_type="text/plain; charset=utf-8",
            size_bytes=len(text.encode()),
            blob_key=document,
            source_uri=source_uri,
            metadata_json='{"team": "research"}',
        ),
    )
    chunked = Event(
        env.caused("AtomChunked", "ingest"),
        AtomChunked(
            parent_atom_id=document,
            tenant_id=tenant,
            chunker=CHUNKER,
            chunks=[
                TextChunk(
                    index=i,
                    atom_id=chunk_ids[i],
                    start_char=a,
                    end_char=b,
                    start_byte=len(text[:a].encode()),
                    end_byte=len(text[:b].encode()),
                )
                for i, (a, b) in enumerate(spans)
            ],
        ),
    )
    events = [
        Keyed("atoms", document, ingested),
        Keyed("atoms", document, chunked),
        Keyed("usage", tenant, _usage(env, tenant, "ingest", document)),
        _embedded(env, tenant, document),
        *(_embedded(chunked.envelope, tenant, c) for c in chunk_ids),
        Keyed("usage", tenant, _usage(chunked.envelope, tenant, "embed", MODEL_VERSION)),
    ]
    return Flow(tenant, document, source_uri, request_id, chunk_ids, events)


def reference_flow(original: Flow, tenant: str, source_uri: str, request_id: str) -> Flow:
    """Another tenant uploads the same bytes: only AtomReferenced + usage (nothing is chunked
    or embedded again)."""
    env = Envelope.new("AtomReferenced", tenant, "ingest", correlation_id=request_id)
    referenced = Event(
        env,
        AtomReferenced(atom_id=original.document, tenant_id=tenant, source_uri=source_uri),
    )
    events = [
        Keyed("atoms", original.document, referenced),
        Keyed("usage", tenant, _usage(env, tenant, "ingest", original.document)),
    ]
    return replace(
        original, tenant=tenant, source_uri=source_uri, request_id=request_id, events=events
    )


def records(codec: AvroCodec, events: list[Keyed]) -> list[Record]:
    return [encode_event(codec, k.event, k.topic, k.key) for k in events]


def stored(codec: AvroCodec, events: list[Keyed], first_offset: int = 0) -> list[StoredRecord]:
    """As the log would hold them: one partition per topic, offsets in order."""
    offsets: dict[str, itertools.count[int]] = {}
    out = []
    for record in records(codec, events):
        offset = next(offsets.setdefault(record.topic, itertools.count(first_offset)))
        out.append(
            StoredRecord(
                record.topic,
                0,
                offset,
                datetime.now(UTC),
                record.key,
                record.value,
                dict(record.headers),
            )
        )
    return out

"""Event handlers of the search projection: one function per consumed event type.

Every handler records its fact and gets back the points the fact completed (store.py), then
writes them to the vector store as keyed upserts. Whichever fact of a point arrives last writes
it, so the store converges to the same points in any delivery order, and re-handling an event
rewrites the same points. A tenant that references a document gets points of its own, with its
own metadata, so tenant isolation stays one keyword match.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import Histogram

from hartonomous.blobs import BlobStore
from hartonomous.chunks import ChunkMismatch
from hartonomous.events import Event
from hartonomous.events.payloads import (
    AtomChunked,
    AtomIngested,
    AtomReferenced,
    AtomReleased,
    EmbeddingComputed,
    Payload,
    TenantErased,
)
from hartonomous.runtime.projection import Handler, Projection
from hartonomous.sealing import SealedValueError, Sealer
from services.search import domain
from services.search.domain import IndexedChunk
from services.search.store import Document, JoinStore, Reference, Vector
from services.search.tunables import GROUP, MAX_BATCH
from services.search.vectors.port import VectorStore

FRESHNESS = Histogram(
    "hartonomous_search_freshness_seconds",
    "From the AtomIngested/AtomReferenced that gave a tenant a document to its chunk's point"
    " being searchable",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)


@dataclass(frozen=True)
class Deps:
    joins: JoinStore
    store: VectorStore
    blobs: BlobStore
    sealer: Sealer


TOPICS = ("atoms", "embeddings")


async def _reference(deps: Deps, event: Event[AtomIngested] | Event[AtomReferenced]) -> Reference:
    """The tenant's metadata opened (filters match clear values); an erased tenant's is empty."""
    atom = event.payload
    try:
        metadata = await deps.sealer.open(atom.tenant_id, atom.metadata_json)
    except SealedValueError as exc:
        raise domain.BadEvent(str(exc)) from None
    return Reference(
        tenant_id=atom.tenant_id,
        document_id=atom.atom_id,
        meta=domain.filterable_metadata(metadata or "{}"),
        referenced_at=event.envelope.occurred_at,
        event_id=event.envelope.event_id,
    )


async def on_atom_ingested(deps: Deps, event: Event[AtomIngested]) -> None:
    atom = event.payload
    document = Document(atom.atom_id, atom.modality, atom.mime_type, event.envelope.event_id)
    await _index(deps, await deps.joins.add_document(document, await _reference(deps, event)))


async def on_atom_referenced(deps: Deps, event: Event[AtomReferenced]) -> None:
    """Another tenant holds bytes already chunked and embedded: it gets points of its own."""
    await _index(deps, await deps.joins.add_reference(await _reference(deps, event)))


async def on_atom_released(deps: Deps, event: Event[AtomReleased]) -> None:
    """The tenant deleted the document: its points go, in every mode (other tenants keep
    theirs)."""
    released = event.payload
    await deps.joins.release_reference(
        released.tenant_id, released.atom_id, event.envelope.event_id
    )
    await deps.store.delete(released.atom_id, tenant_id=released.tenant_id)


async def on_tenant_erased(deps: Deps, event: Event[TenantErased]) -> None:
    """The erasure released every document (their points went with the releases): what is left
    is the tenant's key, which must not open anything here any more."""
    deps.sealer.forget(event.payload.tenant_id)


async def on_atom_chunked(deps: Deps, event: Event[AtomChunked]) -> None:
    """Chunks are facts about the bytes, whoever had them chunked: every tenant referencing the
    document gets points for them. The parent is read once and sliced (and each slice checked
    against its chunk's content address)."""
    chunked = event.payload
    document_id = chunked.parent_atom_id
    parent = await deps.blobs.get(document_id)
    chunks = domain.chunks_of(document_id, parent, chunked.chunks)
    chunk_set = await deps.joins.add_chunk_set(document_id, event.envelope.event_id, chunks)
    # Points of chunks an earlier chunking had and this one has not.
    await deps.store.delete(document_id, keep_atoms=chunk_set.chunk_ids)
    await _index(deps, chunk_set.complete)


async def on_embedding_computed(deps: Deps, event: Event[EmbeddingComputed]) -> None:
    """Document-level vectors wait here too: the atom may turn out to be a chunk (a short
    text is its own single chunk), and only then is it indexed."""
    embedding = event.payload
    if len(embedding.vector) != domain.DIM:
        raise domain.BadEvent(
            f"{embedding.model_id} vectors have {len(embedding.vector)} components;"
            f" the index holds {domain.DIM}"
        )
    vector = Vector(
        embedding.atom_id, embedding.model_version, embedding.vector, event.envelope.event_id
    )
    await _index(deps, await deps.joins.add_vector(vector))


HANDLERS: Mapping[type[Payload], Handler[Deps]] = {
    AtomIngested: on_atom_ingested,
    AtomReferenced: on_atom_referenced,
    AtomReleased: on_atom_released,
    TenantErased: on_tenant_erased,
    AtomChunked: on_atom_chunked,
    EmbeddingComputed: on_embedding_computed,
}


def search_projection(deps: Deps, group: str = GROUP) -> Projection[Deps]:
    """Each fact is its own transaction and every write a keyed upsert (see above), so records
    are applied one at a time and re-applying one is harmless; what can never be projected is
    dead-lettered at once."""
    return Projection.one_at_a_time(
        group, TOPICS, HANDLERS, deps, poison=(domain.BadEvent, ChunkMismatch), max_batch=MAX_BATCH
    )


async def _index(deps: Deps, chunks: Sequence[IndexedChunk]) -> None:
    if not chunks:
        return
    await deps.store.upsert([chunk.point() for chunk in chunks])
    # Only a point's first write measures freshness: a replay's would measure the replay.
    now = time.time()
    for chunk in await deps.joins.mark_indexed(chunks):
        FRESHNESS.observe(max(0.0, now - chunk.referenced_at.timestamp()))

"""The events ingest and inference would emit for a corpus, and helpers to run the search
projection over them on a real embedded log."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from hartonomous.blobs import BlobStore, open_blob_store
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import Record
from hartonomous.events import AvroCodec, Envelope, Event
from hartonomous.events.payloads import (
    AtomChunked,
    AtomIngested,
    AtomReferenced,
    AtomReleased,
    EmbeddingComputed,
    Payload,
    TextChunk,
)
from hartonomous.postgres import create_pool
from hartonomous.runtime.projection import Projection, ProjectionRunner
from hartonomous.sealing import sealer_on
from hartonomous.settings import Settings
from services.search.domain import DIM
from services.search.handlers import Deps, search_projection
from services.search.store import JoinStore
from services.search.vectors import open_vector_store
from services.search.vectors.port import VectorStore
from tests.support.events import record_of
from tests.support.harness import open_log
from tests.support.search_corpus import Doc

CODEC = AvroCodec()
A, B = "acme", "globex"  # two tenants
MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Embeddings:
    """Vectors of a corpus by atom id: the real model's, or random ones where only identity
    matters."""

    version: str
    vectors: Mapping[str, Sequence[float]]


def random_embeddings(docs: Sequence[Doc], seed: int = 3) -> Embeddings:
    """Unit vectors for every document and chunk of `docs`, for tests where only identity
    matters (no model needed)."""
    rng = np.random.default_rng(seed)
    atoms = sorted({doc.atom_id for doc in docs} | {s.atom_id for doc in docs for s in doc.spans})
    vectors = rng.normal(size=(len(atoms), DIM))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Embeddings("v1", dict(zip(atoms, vectors.tolist(), strict=True)))


async def publish_for(
    projection: SearchProjection, docs: Sequence[Doc], embeddings: Embeddings
) -> None:
    """Tenant A ingests `docs` (chunked and embedded); tenant B references the first."""
    for doc in docs:
        await store_blob(projection.deps.blobs, doc)
        records = [ingested(doc, A, {"package": doc.name}), chunked(doc, A)]
        await projection.event_log.append(records + embeddings_of(doc, A, embeddings))
    await projection.event_log.append([referenced(docs[0], B, {"team": "b"})])


def _record(tenant: str, payload: Payload) -> Record:
    return record_of(Event(Envelope.new(type(payload).__name__, tenant, "tests"), payload))


def ingested(
    doc: Doc,
    tenant: str,
    metadata: Any,
    *,
    modality: str = "text",
    mime: str = "text/markdown",
) -> Record:
    payload = AtomIngested(
        atom_id=doc.atom_id,
        tenant_id=tenant,
        modality=modality,
        mime_type=mime,
        size_bytes=len(doc.data),
        blob_key=doc.atom_id,
        source_uri=f"pypi:{doc.name}",
        metadata_json=json.dumps(metadata),
    )
    return _record(tenant, payload)


def referenced(doc: Doc, tenant: str, metadata: Mapping[str, Any]) -> Record:
    payload = AtomReferenced(
        atom_id=doc.atom_id, tenant_id=tenant, metadata_json=json.dumps(metadata)
    )
    return _record(tenant, payload)


def released(doc: Doc, tenant: str) -> Record:
    payload = AtomReleased(atom_id=doc.atom_id, tenant_id=tenant, actor="tests", reason="gone")
    return _record(tenant, payload)


def text_chunks(doc: Doc) -> list[TextChunk]:
    return [s.chunk for s in doc.spans]


def chunked(doc: Doc, tenant: str, chunker: str = "paragraphs/v1 max_chars=800") -> Record:
    payload = AtomChunked(
        parent_atom_id=doc.atom_id, tenant_id=tenant, chunker=chunker, chunks=text_chunks(doc)
    )
    return _record(tenant, payload)


def embedded(atom_id: str, tenant: str, embeddings: Embeddings) -> Record:
    vector = embeddings.vectors[atom_id]
    payload = EmbeddingComputed(
        atom_id=atom_id,
        tenant_id=tenant,
        model_id=MODEL_ID,
        model_version=embeddings.version,
        dim=len(vector),
        vector=list(vector),
        normalized=True,
    )
    return _record(tenant, payload)


def embeddings_of(doc: Doc, tenant: str, embeddings: Embeddings) -> list[Record]:
    """What inference emits for a text: its document vector, and one per distinct chunk that
    is not the document itself."""
    chunk_ids = dict.fromkeys(s.atom_id for s in doc.spans if s.atom_id != doc.atom_id)
    return [embedded(atom_id, tenant, embeddings) for atom_id in [doc.atom_id, *chunk_ids]]


async def store_blob(blobs: BlobStore, doc: Doc) -> None:
    """The document's bytes (the projection slices its chunks out of them)."""

    async def once() -> AsyncIterator[bytes]:
        yield doc.data

    await blobs.put(once())


async def drain(
    event_log: EmbeddedEventLog, *consumers: ProjectionRunner[Any], timeout: float = 60.0
) -> None:
    """Run `consumers` (members of one group) until the group has handled everything appended
    to its topics."""
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        async with asyncio.timeout(timeout):
            while not await _caught_up(event_log, consumers[0]):
                for task in tasks:
                    if task.done():
                        task.result()
                await asyncio.sleep(0.05)
    finally:
        for consumer in consumers:
            consumer.stop()
        await asyncio.gather(*tasks)


async def _caught_up(event_log: EmbeddedEventLog, consumer: ProjectionRunner[Any]) -> bool:
    topics = consumer.projection.topics
    ends = {(t, p): end for t in topics for p, end in (await event_log.end_offsets(t)).items()}
    done = await event_log.committed(consumer.group, list(ends))
    return all(done.get(pair, 0) >= end for pair, end in ends.items())


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A store's points, to compare two stores: ids, term counts and payloads exactly, dense
    vectors to within float32 rounding (Qdrant hands a stored vector back at float64 before a
    restart and at float32 after, and a re-upsert of the same vector may move its last bit)."""

    exact: tuple[str, ...]  # one JSON row per point but its dense vector, sorted
    dense: npt.NDArray[np.float32]  # the dense vectors, in the same order

    def __len__(self) -> int:
        return len(self.exact)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Snapshot)
            and self.exact == other.exact
            and self.dense.shape == other.dense.shape
            and bool(np.allclose(self.dense, other.dense, rtol=0, atol=1e-6))
        )


async def snapshot(store: VectorStore) -> Snapshot:
    """Every point of the store, with its vectors and payload."""
    rows = []
    async for point in store.scan():
        exact = [point.id, [point.sparse.indices, point.sparse.values], point.payload]
        rows.append((json.dumps(exact, sort_keys=True), point.dense))
    rows.sort(key=lambda row: row[0])
    dense = np.asarray([vector for _, vector in rows], np.float32).reshape(len(rows), DIM)
    return Snapshot(tuple(exact for exact, _ in rows), dense)


@dataclass
class SearchProjection:
    """The search projection on a real embedded log, Postgres, blob directory and vector store
    (the embedded engine, or Qdrant's local mode)."""

    event_log: EmbeddedEventLog
    deps: Deps

    @property
    def store(self) -> VectorStore:
        return self.deps.store

    @property
    def projection(self) -> Projection[Deps]:
        return search_projection(self.deps)

    def consumer(self) -> ProjectionRunner[Deps]:
        """A new member of the projection's group (a stopped runner stays stopped)."""
        return ProjectionRunner(self.event_log, CODEC, self.projection)

    async def run(self, members: int = 1) -> None:
        """Consume everything appended so far."""
        await drain(self.event_log, *(self.consumer() for _ in range(members)))


@contextlib.asynccontextmanager
async def open_projection(
    pg_url: str, data_dir: Path, engine: str = "embedded"
) -> AsyncIterator[SearchProjection]:
    event_log = await open_log(pg_url)
    pool = await create_pool(pg_url, max_size=2)
    settings = Settings(data_dir=data_dir, search_engine=engine)
    store = open_vector_store(settings)
    try:
        joins = JoinStore(pool)
        await joins.setup()
        await store.ensure()
        deps = Deps(joins, store, open_blob_store(settings), await sealer_on(pool))
        yield SearchProjection(event_log, deps)
    finally:
        await store.close()
        await pool.close()
        await event_log.close()

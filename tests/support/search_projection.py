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
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec, Envelope, Event, encode_event
from hartonomous.postgres import create_pool
from hartonomous.runtime.consumer import ConsumerLoop
from hartonomous.settings import Settings
from services.search.domain import DIM
from services.search.handlers import Deps, consumer_handler
from services.search.service import GROUP, TOPICS
from services.search.store import JoinStore
from services.search.vectors import open_vector_store
from services.search.vectors.port import VectorStore
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


async def publish_for(projection: Projection, docs: Sequence[Doc], embeddings: Embeddings) -> None:
    """Tenant A ingests `docs` (chunked and embedded); tenant B references the first."""
    for doc in docs:
        await store_blob(projection.deps.blobs, doc)
        records = [ingested(doc, A, {"package": doc.name}), chunked(doc, A)]
        await projection.log.append(records + embeddings_of(doc, A, embeddings))
    await projection.log.append([referenced(docs[0], B, {"team": "b"})])


def _record(event_type: str, tenant: str, payload: dict[str, Any], topic: str, key: str) -> Record:
    envelope = Envelope.new(event_type, tenant, "tests")
    return encode_event(CODEC, Event(envelope, payload), topic, key)


def ingested(
    doc: Doc,
    tenant: str,
    metadata: Any,
    *,
    modality: str = "text",
    mime: str = "text/markdown",
) -> Record:
    payload = {
        "atom_id": doc.atom_id,
        "tenant_id": tenant,
        "modality": modality,
        "mime_type": mime,
        "size_bytes": len(doc.data),
        "blob_key": doc.atom_id,
        "source_uri": f"pypi:{doc.name}",
        "metadata_json": json.dumps(metadata),
    }
    return _record("AtomIngested", tenant, payload, "atoms", doc.atom_id)


def referenced(doc: Doc, tenant: str, metadata: Mapping[str, Any]) -> Record:
    payload = {
        "atom_id": doc.atom_id,
        "tenant_id": tenant,
        "source_uri": None,
        "metadata_json": json.dumps(metadata),
    }
    return _record("AtomReferenced", tenant, payload, "atoms", doc.atom_id)


def chunked(doc: Doc, tenant: str, chunker: str = "paragraphs/v1 max_chars=800") -> Record:
    chunks = [
        {
            "index": s.index,
            "atom_id": s.atom_id,
            "start_char": s.start_char,
            "end_char": s.end_char,
            "start_byte": s.start_byte,
            "end_byte": s.end_byte,
        }
        for s in doc.spans
    ]
    payload = {
        "parent_atom_id": doc.atom_id,
        "tenant_id": tenant,
        "chunker": chunker,
        "chunks": chunks,
    }
    return _record("AtomChunked", tenant, payload, "atoms", doc.atom_id)


def embedded(atom_id: str, tenant: str, embeddings: Embeddings) -> Record:
    vector = embeddings.vectors[atom_id]
    payload = {
        "atom_id": atom_id,
        "tenant_id": tenant,
        "model_id": MODEL_ID,
        "model_version": embeddings.version,
        "dim": len(vector),
        "vector": list(vector),
        "normalized": True,
    }
    return _record("EmbeddingComputed", tenant, payload, "embeddings", atom_id)


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


async def drain(log: EmbeddedEventLog, *consumers: ConsumerLoop, timeout: float = 60.0) -> None:
    """Run `consumers` (members of one group) until the group has handled everything appended
    to its topics."""
    tasks = [asyncio.create_task(c.run()) for c in consumers]
    try:
        async with asyncio.timeout(timeout):
            while not await _caught_up(log, consumers[0]):
                for task in tasks:
                    if task.done():
                        task.result()
                await asyncio.sleep(0.05)
    finally:
        for consumer in consumers:
            consumer.stop()
        await asyncio.gather(*tasks)


async def _caught_up(log: EmbeddedEventLog, consumer: ConsumerLoop) -> bool:
    ends = {(t, p): end for t in consumer.topics for p, end in (await log.end_offsets(t)).items()}
    done = await log.committed(consumer.group, list(ends))
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
class Projection:
    """The search projection on a real embedded log, Postgres, blob directory and local Qdrant."""

    log: EmbeddedEventLog
    deps: Deps

    @property
    def store(self) -> VectorStore:
        return self.deps.store

    def consumer(self) -> ConsumerLoop:
        """A new member of the projection's group (a stopped ConsumerLoop stays stopped)."""
        return ConsumerLoop(self.log, CODEC, GROUP, TOPICS, consumer_handler(self.deps))

    async def run(self, members: int = 1) -> None:
        """Consume everything appended so far."""
        await drain(self.log, *(self.consumer() for _ in range(members)))


@contextlib.asynccontextmanager
async def open_projection(
    pg_url: str, data_dir: Path, engine: str = "embedded"
) -> AsyncIterator[Projection]:
    log = EmbeddedEventLog(pg_url, heartbeat_interval=0.3, session_timeout=3.0)
    await log.start()
    pool = await create_pool(pg_url, max_size=2)
    settings = Settings(data_dir=data_dir, search_engine=engine)
    store = open_vector_store(settings)
    try:
        await log.ensure_topics(platform_topics(partitions=2))
        joins = JoinStore(pool)
        await joins.setup()
        await store.ensure()
        yield Projection(log, Deps(joins, store, open_blob_store(settings)))
    finally:
        await store.close()
        await pool.close()
        await log.close()

"""The search projection on a real embedded log, Postgres, blob directory and local Qdrant, fed
the events ingest and inference emit for real text: one point per chunk and referencing
tenant, the same points in any delivery order, and dead letters for what cannot be indexed."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from prometheus_client import REGISTRY

from hartonomous.eventlog.port import Record, StoredRecord
from hartonomous.eventlog.topics import dlq_topic
from hartonomous.events import Event, decode_event
from services.search.domain import chunks_of
from services.search.handlers import HANDLERS
from services.search.store import Document, Reference, Vector
from services.search.vectors.port import VectorStore
from tests.support.postgres import fresh_database
from tests.support.search_corpus import Doc, span
from tests.support.search_projection import (
    CODEC,
    A,
    B,
    Embeddings,
    SearchProjection,
    chunked,
    embedded,
    embeddings_of,
    ingested,
    open_projection,
    referenced,
    released,
    snapshot,
    store_blob,
    text_chunks,
)

FRESHNESS = "hartonomous_search_freshness_seconds"
WAITING = (
    "select count(*) from pg_locks where not granted"
    " and database = (select oid from pg_database where datname = current_database())"
)


def pick(corpus: Sequence[Doc], *names: str) -> list[Doc]:
    by_name = {doc.name: doc for doc in corpus}
    return [by_name[name] for name in names]


async def publish(
    projection: SearchProjection,
    docs: Sequence[Doc],
    embeddings: Embeddings,
    shared: Sequence[Doc] = (),
) -> None:
    """Tenant A ingests `docs` (chunked and embedded); tenant B then ingests the same bytes of
    `shared`: a dedup hit, so nothing is chunked or embedded again."""
    records: list[Record] = []
    for doc in docs:
        await store_blob(projection.deps.blobs, doc)
        records += [ingested(doc, A, {"package": doc.name, "year": 2024}), chunked(doc, A)]
        records += embeddings_of(doc, A, embeddings)
    records += [referenced(doc, B, {"package": doc.name, "team": "b"}) for doc in shared]
    await projection.event_log.append(records)


async def payloads(store: VectorStore) -> list[dict[str, object]]:
    return [dict(point.payload) async for point in store.scan()]


def distinct_chunks(doc: Doc) -> set[str]:
    return {s.atom_id for s in doc.spans}


async def test_each_chunk_gets_a_point_per_referencing_tenant(
    projection: SearchProjection, corpus: list[Doc], embeddings: Embeddings
) -> None:
    docs = pick(corpus, "fastavro", "asyncpg", "grpcio-summary")
    fastavro, _, summary = docs
    before = freshness_count()
    await publish(projection, docs, embeddings, shared=[fastavro, summary])
    await projection.run()

    points = await payloads(projection.store)
    by_tenant = {
        tenant: {(p["document_id"], p["atom_id"]) for p in points if p["tenant_id"] == tenant}
        for tenant in (A, B)
    }
    # Multi-chunk documents are indexed by their chunks only (their document-level vector
    # waits unused); the short text is its own single chunk.
    assert by_tenant[A] == {(d.atom_id, c) for d in docs for c in distinct_chunks(d)}
    assert by_tenant[B] == {(d.atom_id, c) for d in (fastavro, summary) for c in distinct_chunks(d)}
    assert len(points) == len(by_tenant[A]) + len(by_tenant[B])
    [single] = [p for p in points if p["document_id"] == summary.atom_id and p["tenant_id"] == A]
    assert single["atom_id"] == summary.atom_id
    assert single["snippet"] == " ".join(summary.text.split())
    names = {d.atom_id: d.name for d in docs}
    for point in points:  # each tenant's own metadata, flattened for filters
        own = {"year": "2024"} if point["tenant_id"] == A else {"team": "b"}
        assert point["meta"] == {"package": names[str(point["document_id"])], **own}
        assert point["model_version"] == embeddings.version
        assert (point["modality"], point["mime_type"]) == ("text", "text/markdown")

    # Freshness is measured once per point, at its first write: a replay measures nothing.
    assert freshness_count() - before == len(points)
    await feed(projection, await logged(projection))
    assert freshness_count() - before == len(points)
    assert len(await payloads(projection.store)) == len(points)


def freshness_count() -> float:
    return REGISTRY.get_sample_value(f"{FRESHNESS}_count") or 0.0


async def logged(projection: SearchProjection) -> list[tuple[Event, StoredRecord]]:
    """Every event on the projection's topics, decoded, in log order per topic."""
    return [
        (decode_event(CODEC, record), record)
        for topic in ("atoms", "embeddings")
        async for record in projection.event_log.replay(topic, from_offset=0)
    ]


async def test_any_delivery_order_and_every_event_twice_give_the_same_points(
    projection: SearchProjection, corpus: list[Doc], embeddings: Embeddings, tmp_path: Path
) -> None:
    docs = pick(corpus, "fastavro", "grpcio", "grpcio-summary")
    await publish(projection, docs, embeddings, shared=docs[1:])
    await projection.run()
    expected = await snapshot(projection.store)
    events = await logged(projection)

    for seed in (1, 2):
        shuffled = events * 2
        random.Random(seed).shuffle(shuffled)
        async with open_projection(await fresh_database(), tmp_path / f"replay{seed}") as other:
            for doc in docs:
                await store_blob(other.deps.blobs, doc)
            await feed(other, shuffled)
            assert await snapshot(other.store) == expected
    assert len(expected) == sum(len(distinct_chunks(d)) for d in docs) + sum(
        len(distinct_chunks(d)) for d in docs[1:]
    )


async def test_a_release_takes_only_that_tenants_points_in_any_delivery_order(
    projection: SearchProjection, corpus: list[Doc], embeddings: Embeddings, tmp_path: Path
) -> None:
    docs = pick(corpus, "fastavro", "grpcio")
    fastavro, grpcio = docs
    await publish(projection, docs, embeddings, shared=[fastavro])
    await projection.event_log.append([released(fastavro, A)])
    await projection.run()
    expected = await snapshot(projection.store)
    points = await payloads(projection.store)
    held = {(p["tenant_id"], p["document_id"]) for p in points}
    assert held == {(A, grpcio.atom_id), (B, fastavro.atom_id)}
    assert sum(p["tenant_id"] == B for p in points) == len(distinct_chunks(fastavro))

    for seed in (3, 4):  # a release delivered before what it releases still wins
        shuffled = await logged(projection) * 2
        random.Random(seed).shuffle(shuffled)
        async with open_projection(await fresh_database(), tmp_path / f"replay{seed}") as other:
            for doc in docs:
                await store_blob(other.deps.blobs, doc)
            await feed(other, shuffled)
            assert await snapshot(other.store) == expected

    # The same tenant ingesting the bytes again later is a new reference: its points return.
    await projection.event_log.append([referenced(fastavro, A, {"package": "fastavro"})])
    await projection.run()
    again = {(p["tenant_id"], p["document_id"]) for p in await payloads(projection.store)}
    assert (A, fastavro.atom_id) in again


async def feed(projection: SearchProjection, events: Sequence[tuple[Event, StoredRecord]]) -> None:
    """Hand events to the projection's handlers directly, in the given order."""
    for event, _ in events:
        handler = HANDLERS.get(type(event.payload))
        if handler is not None:
            await handler(projection.deps, event)


async def test_two_halves_of_a_join_recorded_at_once_never_both_miss_it(
    projection: SearchProjection, corpus: list[Doc], embeddings: Embeddings, pg_url: str
) -> None:
    """Two consumers record a reference and the vector it joins at the same moment, and both
    read the join before either commits: neither sees the other's half, so without
    SERIALIZABLE neither would write the point. One must fail instead (and be retried)."""
    [doc] = pick(corpus, "grpcio-summary")
    joins = projection.deps.joins
    await joins.add_chunk_set(doc.atom_id, "0", chunks_of(doc.atom_id, doc.data, text_chunks(doc)))
    document = Document(doc.atom_id, "text", "text/plain", "1")
    ref = Reference(A, doc.atom_id, {}, datetime.now(UTC), "1")
    vector = Vector(doc.atom_id, embeddings.version, embeddings.vectors[doc.atom_id], "2")

    # Only the join reads search.chunks: holding it locked parks both transactions right
    # before their joins, after their writes, until both are there.
    gate = await asyncpg.connect(pg_url)
    async with gate.transaction():
        await gate.execute("lock table search.chunks in access exclusive mode")
        both = asyncio.gather(
            joins.add_document(document, ref), joins.add_vector(vector), return_exceptions=True
        )
        async with asyncio.timeout(10):
            while await gate.fetchval(WAITING) < 2:  # noqa: ASYNC110 (Postgres has no event)
                await asyncio.sleep(0.02)
    results = await both
    await gate.close()

    retried = [r for r in results if isinstance(r, asyncpg.SerializationError)]
    assert len(retried) == 1, results
    assert await joins.add_vector(vector)  # the retry sees the committed half


async def test_a_newer_chunking_replaces_the_old_chunks(
    projection: SearchProjection, corpus: list[Doc], embeddings: Embeddings
) -> None:
    [doc] = pick(corpus, "grpcio")
    await publish(projection, [doc], embeddings, shared=[doc])
    await projection.run()
    [first] = [
        r
        async for r in projection.event_log.replay("atoms", from_offset=0)
        if r.headers["event_type"] == "AtomChunked"
    ]

    # Re-chunked as one chunk: the whole text, whose vector is the document-level one.
    whole = replace(doc, spans=(span(doc.text, 0, len(doc.text)),))
    await projection.event_log.append([chunked(whole, A, chunker="whole/v1")])
    await projection.run()
    points = await payloads(projection.store)
    assert {(p["tenant_id"], p["atom_id"]) for p in points} == {(A, doc.atom_id), (B, doc.atom_id)}

    # A late re-delivery of the older chunking changes nothing.
    await feed(projection, [(decode_event(CODEC, first), first)])
    assert len(await payloads(projection.store)) == 2


async def test_the_latest_reference_sets_a_tenants_metadata(
    projection: SearchProjection, corpus: list[Doc], embeddings: Embeddings
) -> None:
    [doc] = pick(corpus, "grpcio-summary")
    await publish(projection, [doc], embeddings, shared=[doc])
    await projection.run()
    first, *_ = [r async for r in projection.event_log.replay("atoms", from_offset=0)]
    await projection.event_log.append([referenced(doc, A, {"package": "grpc", "tags": ["rpc", 2]})])
    await projection.run()
    await feed(projection, [(decode_event(CODEC, first), first)])  # the older AtomIngested

    metas = {p["tenant_id"]: p["meta"] for p in await payloads(projection.store)}
    assert metas == {
        A: {"package": "grpc", "tags": ["rpc", "2"]},
        B: {"package": doc.name, "team": "b"},
    }


async def test_what_cannot_be_indexed_is_dead_lettered_and_the_rest_flows(
    projection: SearchProjection, corpus: list[Doc], embeddings: Embeddings
) -> None:
    [doc] = pick(corpus, "asyncpg")
    second = doc.spans[1]
    shifted = replace(second.chunk, start_byte=second.chunk.start_byte + 1)
    off_by_one = replace(doc, spans=(replace(second, chunk=shifted),))
    other = replace(doc, name="other", text=doc.text + " ")
    await store_blob(projection.deps.blobs, other)
    await projection.event_log.append(
        [
            chunked(off_by_one, A),
            ingested(other, A, ["not", "an", "object"]),
            embedded(doc.atom_id, A, Embeddings("v2", {doc.atom_id: [0.6, 0.8]})),
        ]
    )
    await publish(projection, [doc], embeddings)
    await projection.run()

    dead = [r async for r in projection.event_log.replay(dlq_topic("atoms"), from_offset=0)]
    dead += [r async for r in projection.event_log.replay(dlq_topic("embeddings"), from_offset=0)]
    errors = " | ".join(r.headers["dlq_error"] for r in dead)
    assert len(dead) == 3, errors
    assert f"do not hash to {second.atom_id}" in errors
    assert "metadata_json must be a JSON object, got list" in errors
    assert "2 components; the index holds 384" in errors
    assert await projection.store.count(A) == len(distinct_chunks(doc))

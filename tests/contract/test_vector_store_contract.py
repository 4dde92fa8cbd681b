"""One contract, every VectorStore adapter (the embedded store, Qdrant in local mode): keyed and
idempotent upserts, deletes, dense / sparse / hybrid queries, filters, the tenant scope of every
query mode and of BM25's statistics, persistence, and a rebuild from the log."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from hartonomous.runtime.projection import replay
from hartonomous.settings import Settings
from services.search import domain
from services.search.domain import Filter, Point
from services.search.vectors import ENGINES, open_vector_store
from services.search.vectors.port import VectorStore
from tests.support.postgres import fresh_database
from tests.support.search_corpus import package_docs
from tests.support.search_projection import (
    CODEC,
    A,
    B,
    open_projection,
    publish_for,
    random_embeddings,
    snapshot,
    store_blob,
)

TEXTS = [
    "Avro schemas are resolved between writer and reader versions.",
    "A file lock coordinates access between processes.",
    "The HTTP/1.1 state machine parses bytes off the wire.",
    "Vectors are compared by cosine similarity.",
]


@pytest.fixture(params=ENGINES)
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, search_engine=request.param)


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[VectorStore]:
    opened = open_vector_store(settings)
    await opened.ensure()
    await opened.ensure()  # idempotent: a restart finds the collection
    try:
        yield opened
    finally:
        await opened.close()


def unit(seed: int) -> list[float]:
    v = np.random.default_rng(seed).normal(size=domain.DIM)
    return (v / np.linalg.norm(v)).tolist()  # type: ignore[no-any-return]


def point(tenant: str, document: str, chunk: int, text: str, **meta: str | list[str]) -> Point:
    atom = f"{document}-{chunk}"
    return Point(
        domain.point_id(tenant, document, atom, "v1"),
        unit(hash((document, chunk)) % 2**32),
        domain.term_counts(text),
        {
            "tenant_id": tenant,
            "document_id": document,
            "atom_id": atom,
            "model_version": "v1",
            "meta": meta,
        },
    )


async def test_an_upsert_replaces_the_point_whole(store: VectorStore) -> None:
    first = point(A, "d", 0, TEXTS[0], lang="en")
    second = point(A, "d", 0, TEXTS[1], team="x")
    await store.upsert([first])
    await store.upsert([second])
    [stored] = [p async for p in store.scan()]
    assert stored.id == first.id == second.id
    assert stored.payload["meta"] == {"team": "x"}
    assert stored.sparse == second.sparse
    np.testing.assert_allclose(stored.dense, second.dense, rtol=1e-6)


async def test_every_mode_stays_inside_the_tenant(store: VectorStore) -> None:
    mine = [point(A, "a", i, text) for i, text in enumerate(TEXTS)]
    theirs = [point(B, "b", i, text) for i, text in enumerate(TEXTS)]
    await store.upsert(mine + theirs)
    # B's points are exact matches for the query (same vector, same words); A must not see them.
    probe = theirs[0]
    terms = domain.query_terms(TEXTS[0])
    where = Filter(A)
    for hits in (
        await store.dense(probe.dense, where, 10),
        await store.sparse(terms, where, 10),
        await store.hybrid(probe.dense, terms, where, 10, 50),
    ):
        assert hits and {h.payload["tenant_id"] for h in hits} == {A}
    assert (await store.count(A), await store.count(B), await store.count()) == (4, 4, 8)


async def test_bm25_statistics_are_the_tenants_own(store: VectorStore) -> None:
    """IDF is measured over the querying tenant's points: another tenant's documents cannot
    shift its scores (which would leak what they contain)."""
    await store.upsert([point(A, "a", i, text) for i, text in enumerate(TEXTS)])
    terms = domain.query_terms("avro schemas for readers")
    before = await store.sparse(terms, Filter(A), 10)
    flood = [point(B, "b", i, "avro avro schemas readers") for i in range(40)]
    await store.upsert(flood)
    after = await store.sparse(terms, Filter(A), 10)
    assert before and [h.id for h in after] == [h.id for h in before]
    assert [h.score for h in after] == pytest.approx([h.score for h in before])


async def test_filters_match_every_condition_and_any_list_member(store: VectorStore) -> None:
    await store.upsert(
        [
            point(A, "a", 0, TEXTS[0], lang="en", tags=["avro", "schema"]),
            point(A, "a", 1, TEXTS[1], lang="de", tags=["lock"]),
        ]
    )
    terms = domain.query_terms(" ".join(TEXTS))

    async def atoms(*must: tuple[str, str]) -> set[str]:
        return {h.payload["atom_id"] for h in await store.sparse(terms, Filter(A, must), 10)}

    assert await atoms(("meta.tags", "schema")) == {"a-0"}
    assert await atoms(("meta.lang", "en"), ("meta.tags", "lock")) == set()
    assert await atoms(("meta.lang", "de")) == {"a-1"}


async def test_delete_by_document_and_tenant_keeping_listed_chunks(store: VectorStore) -> None:
    await store.upsert(
        [point(t, d, i, TEXTS[i]) for t in (A, B) for d in ("x", "y") for i in range(3)]
    )
    await store.delete("x", tenant_id=A, keep_atoms=["x-1"])
    await store.delete("y")
    left = sorted([(p.payload["tenant_id"], p.payload["atom_id"]) async for p in store.scan()])
    assert left == [(A, "x-1"), (B, "x-0"), (B, "x-1"), (B, "x-2")]


async def test_hybrid_fuses_the_best_of_both_rankings(store: VectorStore) -> None:
    points = [point(A, "a", i, text) for i, text in enumerate(TEXTS)]
    await store.upsert(points)
    # The vector is chunk 2's, the words are chunk 0's: both lead the fused list.
    hits = await store.hybrid(points[2].dense, domain.query_terms("avro schemas"), Filter(A), 2, 50)
    assert {h.payload["atom_id"] for h in hits} == {"a-0", "a-2"}


async def test_writing_the_same_points_again_changes_nothing(store: VectorStore) -> None:
    points = [point(t, "d", i, text, lang="en") for t in (A, B) for i, text in enumerate(TEXTS)]
    await store.upsert(points)
    before = await snapshot(store)
    await store.upsert(points + points[:2])  # a re-delivery, with a point named twice
    assert await snapshot(store) == before
    assert len(before) == len(points)


async def test_dense_ranks_exactly_by_cosine_within_the_filter(store: VectorStore) -> None:
    rng = np.random.default_rng(7)
    points = [
        point(A, f"d{i % 7}", i, TEXTS[i % 4], lang="en" if i % 3 else "de") for i in range(300)
    ]
    await store.upsert(points + [point(B, "b", i, TEXTS[0]) for i in range(50)])
    probe = rng.normal(size=domain.DIM)
    for must, chosen in (
        ((("model_version", "v1"),), points),
        ((("meta.lang", "de"),), [p for p in points if p.payload["meta"]["lang"] == "de"]),
        (
            (("document_id", "d3"), ("meta.lang", "en")),
            [
                p
                for p in points
                if p.payload["document_id"] == "d3" and p.payload["meta"]["lang"] == "en"
            ],
        ),
    ):
        matrix = np.array([p.dense for p in chosen])
        scores = matrix @ (probe / np.linalg.norm(probe))
        expected = [chosen[i].id for i in np.argsort(-scores)[:10]]
        hits = await store.dense(probe.tolist(), Filter(A, must), 10)
        assert [h.id for h in hits] == expected
        assert [h.score for h in hits] == pytest.approx(sorted(scores, reverse=True)[:10], abs=1e-5)
    assert await store.dense(probe.tolist(), Filter(A, (("model_version", "v2"),)), 10) == []


async def test_points_outlive_the_process_that_wrote_them(settings: Settings) -> None:
    points = [point(A, "d", i, text, lang="en") for i, text in enumerate(TEXTS)]
    first = open_vector_store(settings)
    await first.ensure()
    await first.upsert(points)
    await first.delete("d", tenant_id=A, keep_atoms=["d-0", "d-1", "d-2"])
    expected = await snapshot(first)
    await first.close()
    again = open_vector_store(settings)
    await again.ensure()
    try:
        assert await snapshot(again) == expected
        assert len(expected) == 3
        hits = await again.sparse(domain.query_terms(TEXTS[0]), Filter(A), 10)
        assert hits[0].payload["atom_id"] == "d-0"
    finally:
        await again.close()


async def test_a_rebuild_from_the_log_gives_the_same_points(
    settings: Settings, pg_url: str, tmp_path: Path
) -> None:
    """The recovery path: a store that lost its files is refilled by replaying the log."""
    docs = package_docs()[:3]
    async with open_projection(pg_url, tmp_path / "live", settings.search_engine) as live:
        await publish_for(live, docs, random_embeddings(docs))
        await live.run()
        expected = await snapshot(live.store)
        async with open_projection(
            await fresh_database(), tmp_path / "rebuilt", settings.search_engine
        ) as rebuilt:
            for doc in docs:
                await store_blob(rebuilt.deps.blobs, doc)
            replayed = await replay(live.event_log, CODEC, rebuilt.projection)
            assert await snapshot(rebuilt.store) == expected
    assert replayed.rejected == 0
    assert len(expected) == sum(len({s.atom_id for s in d.spans}) for d in docs) + len(
        {s.atom_id for s in docs[0].spans}
    )

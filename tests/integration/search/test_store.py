"""The vector-store port on its default adapter (Qdrant local mode under the data dir): keyed
upserts, deletes, the tenant scope of every query mode and of BM25's statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from hartonomous.settings import Settings
from services.search import domain
from services.search.domain import Filter, Point
from services.search.store import VectorStore, open_vector_store
from tests.integration.search.support import A, B

TEXTS = [
    "Avro schemas are resolved between writer and reader versions.",
    "A file lock coordinates access between processes.",
    "The HTTP/1.1 state machine parses bytes off the wire.",
    "Vectors are compared by cosine similarity.",
]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[VectorStore]:
    opened = open_vector_store(Settings(data_dir=tmp_path))
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
        domain.document_terms(text),
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

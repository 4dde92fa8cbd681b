"""Search congruence: do the embedded engine (the default) and Qdrant (production) answer a
query alike? ~10k real paragraphs (the standard library's docstrings, bench/_search_data.py) in
two tenants, written in small batches as the projection writes them, into the embedded store and
into the Qdrant adapter twice: as it weighs BM25 now (each tenant's own average length) and as
it did before (a fixed AVG_LEN, `reweight_tolerance=math.inf`). Queries are three words of one
of the tenant's paragraphs, half of them narrowed by a metadata filter; hybrid ones add a seeded
random vector (dense search is exact on both engines, so any disagreement is BM25's).

Reported: the mean share of the embedded engine's top 10 that Qdrant's top 10 holds, per mode,
now (value) and before (peer_value). No timings: they would say nothing about congruence.

    python -m bench search_congruence
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient

from bench import _search_data as data
from bench.common import Metric, write
from services.search import domain
from services.search.domain import FUSION_CANDIDATES, Filter, Point
from services.search.vectors.embedded.engine import EmbeddedStore
from services.search.vectors.port import VectorStore
from services.search.vectors.qdrant import QdrantStore

PARAGRAPHS = data.REAL_CHUNKS
TENANTS = ("acme", "globex")
FIRST_TENANT_SHARE = 0.8  # acme holds the first 80% of the paragraphs, globex the rest
BATCH = 32  # points per upsert: a few documents' chunks, as the projection writes them
QUERIES = 100  # per tenant and mode
QUERY_WORDS = 3
K = 10
SEED = 20_260_601
BEFORE = "qdrant, fixed AVG_LEN"


@dataclass(frozen=True)
class Query:
    vector: list[float]
    terms: domain.SparseVector
    where: Filter


def unit(stream: int, number: int) -> list[float]:
    """A seeded random unit vector: the number-th of a stream (0: points, 1: queries)."""
    rows = data.unit_rows(np.random.default_rng((SEED, stream, number)), 1)
    return rows[0].tolist()  # type: ignore[no-any-return]


def corpus(paragraphs: Sequence[str]) -> list[Point]:
    split = int(len(paragraphs) * FIRST_TENANT_SHARE)
    return [
        Point(
            str(uuid.UUID(int=i)),
            unit(0, i),
            domain.term_counts(text),
            {
                "tenant_id": TENANTS[i >= split],
                "document_id": f"d{i // 8}",
                "atom_id": f"a{i}",
                "model_version": "bench",
                "meta": {"half": "even" if i % 2 == 0 else "odd"},
            },
        )
        for i, text in enumerate(paragraphs)
    ]


def queries(paragraphs: Sequence[str], points: Sequence[Point]) -> list[Query]:
    """QUERIES per tenant: words of one of its paragraphs; every other one filtered."""
    rng = np.random.default_rng(SEED)
    made: list[Query] = []
    for tenant in TENANTS:
        mine = [i for i, p in enumerate(points) if p.payload["tenant_id"] == tenant]
        for q in range(QUERIES):
            words = domain.tokenize(paragraphs[int(rng.choice(mine))])
            text = " ".join(rng.choice(words, size=min(QUERY_WORDS, len(words)), replace=False))
            must = (("meta.half", "even"),) if q % 2 else ()
            made.append(Query(unit(1, len(made)), domain.query_terms(text), Filter(tenant, must)))
    return made


async def top_ids(store: VectorStore, mode: str, query: Query) -> list[str]:
    if mode == "sparse":
        hits = await store.sparse(query.terms, query.where, K)
    else:
        hits = await store.hybrid(query.vector, query.terms, query.where, K, FUSION_CANDIDATES)
    return [hit.id for hit in hits]


def overlap(expected: Sequence[str], got: Sequence[str]) -> float:
    return len(set(expected) & set(got)) / max(len(expected), len(got), 1)


async def measure(work: Path) -> list[Metric]:
    paragraphs = data.stdlib_paragraphs(PARAGRAPHS)
    points = corpus(paragraphs)
    embedded = EmbeddedStore(work / "embedded")
    now = QdrantStore(QdrantClient(location=":memory:"), server=False)
    before = QdrantStore(
        QdrantClient(location=":memory:"), server=False, reweight_tolerance=math.inf
    )
    stores = (embedded, now, before)
    try:
        for store in stores:
            await store.ensure()
            for start in range(0, len(points), BATCH):
                await store.upsert(points[start : start + BATCH])
        metrics = []
        for mode in ("sparse", "hybrid"):
            shares: dict[VectorStore, list[float]] = {now: [], before: []}
            for query in queries(paragraphs, points):
                expected = await top_ids(embedded, mode, query)
                for qdrant, found in shares.items():
                    found.append(overlap(expected, await top_ids(qdrant, mode, query)))
            metrics.append(
                Metric(
                    f"{mode} top-{K} overlap with embedded",
                    "fraction",
                    float(np.mean(shares[now])),
                    BEFORE,
                    float(np.mean(shares[before])),
                )
            )
            print(f"search_congruence: {metrics[-1]}", flush=True)
        return metrics
    finally:
        for store in stores:
            await store.close()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-search-congruence-") as work:
        path = write("search_congruence", asyncio.run(measure(Path(work))))
    print(f"wrote {path}", flush=True)

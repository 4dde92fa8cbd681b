"""Search: query latency per mode (dense, sparse BM25, hybrid RRF) at 10k and 100k chunks
under a tenant filter that selects 10% of them, on the embedded default (the Qdrant adapter in
local mode under a data dir); recall@10 of dense queries against exact brute-force cosine; and
ingest->searchable latency through the whole projection (embedded log, Postgres join state,
vector store).

The peer for dense latency and the reference for recall is numpy brute force over the same
vectors and the same tenant mask, the thing a user would write instead; ours and the peer
alternate query by query. Vectors are synthetic unit vectors, texts Zipf-distributed words:
latency does not depend on what the vectors mean. Local mode evaluates payload filters point
by point in Python, so the 100k run uses fewer queries.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import Metric, percentile, write
from hartonomous.blobs import open_blob_store
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import Record
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec, Envelope, Event, encode_event
from hartonomous.postgres import create_pool, embedded_postgres_url
from hartonomous.runtime.consumer import ConsumerLoop
from hartonomous.settings import Settings
from services.search import domain
from services.search.domain import FUSION_CANDIDATES, Filter, Point
from services.search.facts import Facts
from services.search.handlers import Deps, consumer_handler
from services.search.service import GROUP, TOPICS
from services.search.store import VectorStore, open_vector_store

SIZES = ((10_000, 40), (100_000, 8))  # (chunks, queries per mode)
TENANTS = 10  # a tenant filter selects 1 in 10 points
K = 10
VOCABULARY = 20_000
WORDS_PER_CHUNK = 80
QUERY_WORDS = 3
BUILD_BATCH = 2_000
INGESTS = 100
SEED = 20_260_521
PEER = "numpy brute force"
CODEC = AvroCodec()


class Corpus:
    """Unit vectors, word lists and a tenant per chunk."""

    def __init__(self, n: int, rng: np.random.Generator) -> None:
        vectors = rng.normal(size=(n, domain.DIM)).astype(np.float32)
        self.vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        self.tenants = np.arange(n) % TENANTS
        ranks = np.arange(1, VOCABULARY + 1, dtype=np.float64)
        self.word_p = (1 / ranks) / (1 / ranks).sum()
        self.words = rng.choice(VOCABULARY, size=(n, WORDS_PER_CHUNK), p=self.word_p)

    def point(self, i: int) -> Point:
        text = " ".join(f"w{w}" for w in self.words[i])
        payload = {"tenant_id": f"t{self.tenants[i]}", "document_id": f"d{i}", "atom_id": f"a{i}"}
        return Point(
            str(uuid.UUID(int=i)), self.vectors[i].tolist(), domain.document_terms(text), payload
        )

    def exact(self, query: np.ndarray, tenant: int) -> list[int]:
        """The peer: cosine top-k among the tenant's vectors (unit rows: a dot product)."""
        rows = np.flatnonzero(self.tenants == tenant)
        scores = self.vectors[rows] @ query
        top = np.argpartition(-scores, K)[:K]
        return [int(i) for i in rows[top[np.argsort(-scores[top])]]]


async def build(store: VectorStore, corpus: Corpus) -> float:
    """Upsert every chunk; returns points per second."""
    started = time.perf_counter()
    n = len(corpus.vectors)
    for start in range(0, n, BUILD_BATCH):
        await store.upsert([corpus.point(i) for i in range(start, min(n, start + BUILD_BATCH))])
    return n / (time.perf_counter() - started)


async def timed(call: Awaitable[object]) -> float:
    started = time.perf_counter()
    await call
    return (time.perf_counter() - started) * 1000


async def query_size(n: int, queries: int, data_dir: Path) -> list[Metric]:
    rng = np.random.default_rng(SEED + n)
    corpus = Corpus(n, rng)
    store = open_vector_store(Settings(data_dir=data_dir))
    await store.ensure()
    try:
        rate = await build(store, corpus)
        ours: dict[str, list[float]] = {"dense": [], "sparse": [], "hybrid": []}
        peer: list[float] = []
        recall: list[float] = []
        for q in range(queries):
            tenant = q % TENANTS
            noisy = corpus.vectors[rng.integers(n)] + rng.normal(scale=0.05, size=domain.DIM)
            vector = (noisy / np.linalg.norm(noisy)).astype(np.float32)
            words = rng.choice(VOCABULARY, size=QUERY_WORDS, p=corpus.word_p)
            terms = domain.query_terms(" ".join(f"w{w}" for w in words))
            where = Filter(f"t{tenant}")
            started = time.perf_counter()
            hits = await store.dense(vector.tolist(), where, K)
            ours["dense"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            exact = corpus.exact(vector, tenant)
            peer.append((time.perf_counter() - started) * 1000)
            recall.append(len({h.payload["atom_id"] for h in hits} & {f"a{i}" for i in exact}) / K)
            ours["sparse"].append(await timed(store.sparse(terms, where, K)))
            hybrid = store.hybrid(vector.tolist(), terms, where, K, FUSION_CANDIDATES)
            ours["hybrid"].append(await timed(hybrid))
    finally:
        await store.close()
    size = f"{n // 1000}k"
    metrics = [Metric(f"build {size} chunks", "points/s", rate)]
    for mode, latencies in ours.items():
        for q in (50, 99):
            metrics.append(
                Metric(
                    f"{mode} {size} p{q} (10% tenant)",
                    "ms",
                    percentile(latencies, q),
                    PEER if mode == "dense" else None,
                    percentile(peer, q) if mode == "dense" else None,
                    higher_is_better=False,
                )
            )
    metrics.append(Metric(f"dense {size} recall@10", "ratio", float(np.mean(recall)), PEER, 1.0))
    return metrics


async def ingest_to_searchable(work: Path) -> list[float]:
    """Milliseconds from appending a text's events (as ingest and inference would) to its
    chunk answering queries, one text at a time through the running projection."""
    pg_url = embedded_postgres_url(work / "pgdata", cleanup="delete")
    log = EmbeddedEventLog(pg_url)
    await log.start()
    await log.ensure_topics(platform_topics())
    pool = await create_pool(pg_url, max_size=4)
    settings = Settings(data_dir=work / "data")
    store = open_vector_store(settings)
    await store.ensure()
    facts = Facts(pool)
    await facts.setup()
    deps = Deps(facts, store, open_blob_store(settings))
    consumer = ConsumerLoop(log, CODEC, GROUP, TOPICS, consumer_handler(deps))
    task = asyncio.create_task(consumer.run())
    rng = np.random.default_rng(SEED)
    latencies: list[float] = []
    try:
        for i in range(INGESTS):
            data = f"text {i}: " + " ".join(f"w{w}" for w in rng.integers(0, 500, 40))
            records = await _text_events(deps, data.encode(), rng)
            started = time.perf_counter()
            await log.append(records)
            await _until_searchable(store, i + 1)
            latencies.append((time.perf_counter() - started) * 1000)
    finally:
        consumer.stop()
        await task
        await store.close()
        await pool.close()
        await log.close()
    return latencies


async def _until_searchable(store: VectorStore, n: int) -> None:
    async with asyncio.timeout(30):
        while await store.count("bench") < n:  # noqa: ASYNC110 (a store write has no event)
            await asyncio.sleep(0.002)


async def _text_events(deps: Deps, data: bytes, rng: np.random.Generator) -> list[Record]:
    """A short text: AtomIngested, its single-chunk AtomChunked, its EmbeddingComputed."""

    async def once() -> AsyncIterator[bytes]:
        yield data

    atom = (await deps.blobs.put(once())).sha256
    vector = rng.normal(size=domain.DIM)
    chunk = {"index": 0, "atom_id": atom, "start_char": 0, "end_char": len(data)}
    payloads: dict[str, dict[str, Any]] = {
        "AtomIngested": {
            "atom_id": atom, "tenant_id": "bench", "modality": "text", "mime_type": "text/plain",
            "size_bytes": len(data), "blob_key": atom, "source_uri": None, "metadata_json": "{}",
        },
        "AtomChunked": {
            "parent_atom_id": atom, "tenant_id": "bench", "chunker": "bench",
            "chunks": [{**chunk, "start_byte": 0, "end_byte": len(data)}],
        },
        "EmbeddingComputed": {
            "atom_id": atom, "tenant_id": "bench", "model_id": "bench", "model_version": "bench",
            "dim": domain.DIM, "vector": (vector / np.linalg.norm(vector)).tolist(),
            "normalized": True,
        },
    }  # fmt: skip
    return [
        encode_event(
            CODEC,
            Event(Envelope.new(kind, "bench", "bench"), payload),
            "embeddings" if kind == "EmbeddingComputed" else "atoms",
            atom,
        )
        for kind, payload in payloads.items()
    ]


async def measure() -> list[Metric]:
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    metrics: list[Metric] = []
    for n, queries in SIZES:
        print(f"search: {n} chunks", flush=True)
        metrics += await query_size(n, queries, work / f"q{n}")
    latencies = await ingest_to_searchable(work / "ingest")
    metrics += [
        Metric(f"ingest->searchable p{q}", "ms", percentile(latencies, q), higher_is_better=False)
        for q in (50, 95)
    ]
    return metrics


def main() -> None:
    started = datetime.now(UTC)
    path = write("search", asyncio.run(measure()))
    print(f"wrote {path} in {(datetime.now(UTC) - started).total_seconds():.0f} s", flush=True)

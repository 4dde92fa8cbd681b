"""Search: query latency per mode (dense, sparse BM25, hybrid RRF) at 10k, 100k and 1M chunks
under a tenant filter that selects 10% of them, for the embedded store (the default), qdrant-client's
local mode and numpy exact search; the embedded store's peak RSS and disk use; recall@10 of dense
queries against exact search on real text embedded by our own model; and ingest->searchable
latency through the whole projection while a sustained ingest runs.

Each (engine, size) runs in a process of its own, so its peak RSS is the store's: it builds the
store batch by batch, times every mode (store alone in memory), records VmHWM, then loads the
queried tenants' exact matrices and alternates dense queries with numpy, query by query. Qdrant's
local mode is measured at 10k and 100k only: it upserts ~1.2k points/s (14 min to load 1M) and
filters point by point in Python, so fewer queries are timed at 100k.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench import _search_data as data
from bench.common import Metric, percentile, write
from hartonomous.blobs import open_blob_store
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import Record
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec
from hartonomous.events.payloads import (
    AtomChunked,
    AtomIngested,
    EmbeddingComputed,
    Payload,
    TextChunk,
)
from hartonomous.postgres import create_pool, embedded_postgres_url
from hartonomous.runtime.projection import ProjectionRunner
from hartonomous.sealing import sealer_on
from hartonomous.settings import Settings
from services.search import domain
from services.search.domain import FUSION_CANDIDATES, Filter
from services.search.handlers import Deps, search_projection
from services.search.store import JoinStore
from services.search.vectors import open_vector_store
from services.search.vectors.port import VectorStore
from tests.support.events import new_event, record_of

RUNS = (  # (engine, chunks, queries per mode)
    ("embedded", 10_000, 200),
    ("qdrant", 10_000, 40),
    ("embedded", 100_000, 200),
    ("qdrant", 100_000, 8),
    ("embedded", 1_000_000, 100),
)
QUERIED_TENANTS = (0, 1)
WARMUP = 5
APPEND_BATCH = 16
APPEND_EVERY = 0.02  # seconds: 800 points/s, far above a live ingest's pace
K = 10
RECALL_QUERIES = 200
PROBES = 100
LOAD_DOCS_PER_SECOND = 20
PEER = "numpy exact"
CODEC = AvroCodec()
MODES = ("dense", "sparse", "hybrid")


@dataclass
class Run:
    """What one (engine, size) process measured: latencies in ms, sizes in MiB."""

    engine: str
    n: int
    build_per_s: float = 0.0
    latencies: dict[str, list[float]] = field(
        default_factory=lambda: {m: [] for m in (*MODES, "dense appending")}
    )
    numpy: list[float] = field(default_factory=list)
    recall: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0
    disk_mib: float = 0.0


def vm_hwm_mib() -> float:
    """This process's peak resident set size."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def disk_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


async def timed(call: Awaitable[object]) -> float:
    started = time.perf_counter()
    await call
    return (time.perf_counter() - started) * 1000


async def measure_run(engine: str, n: int, queries: int, work: Path) -> Run:
    run = Run(engine, n)
    rng = np.random.default_rng(data.SEED + n)
    probes: list[np.ndarray] = []
    store = open_vector_store(Settings(data_dir=work / "store", search_engine=engine))
    await store.ensure()
    try:
        started = time.perf_counter()
        for batch in data.synthetic(n):
            await store.upsert(batch.points)
            keep_peer_rows(work, batch)
            probes += list(batch.vectors[rng.integers(len(batch.vectors), size=2)])
        run.build_per_s = n / (time.perf_counter() - started)

        def query(q: int) -> tuple[np.ndarray, Filter, int]:
            tenant = QUERIED_TENANTS[q % len(QUERIED_TENANTS)]
            noisy = probes[q % len(probes)] + rng.normal(scale=0.05, size=domain.DIM)
            return (noisy / np.linalg.norm(noisy)).astype(np.float32), Filter(f"t{tenant}"), tenant

        # The store alone: every mode, then its peak RSS. The first queries of each mode are
        # not timed (cold caches: a freshly written store's pages, SQLite's, numpy's).
        for q in range(WARMUP):
            vector, where, _ = query(q)
            await store.hybrid(vector.tolist(), data.query_terms(rng), where, K, FUSION_CANDIDATES)
        for q in range(queries):
            vector, where, _ = query(q)
            terms = data.query_terms(rng)
            run.latencies["sparse"].append(await timed(store.sparse(terms, where, K)))
            hybrid = store.hybrid(vector.tolist(), terms, where, K, FUSION_CANDIDATES)
            run.latencies["hybrid"].append(await timed(hybrid))
        run.peak_rss_mib = vm_hwm_mib()
        run.disk_mib = disk_mib(work / "store")
        # Dense queries alternate with the peer over the same tenant's exact matrix.
        matrices = {
            t: np.fromfile(work / f"tenant{t}.f32", np.float32).reshape(-1, domain.DIM)
            for t in QUERIED_TENANTS
        }
        for q in range(WARMUP):
            vector, where, tenant = query(q)
            await store.dense(vector.tolist(), where, K)
            exact_top(matrices[tenant], vector)
        for q in range(queries):
            vector, where, tenant = query(q)
            started = time.perf_counter()
            hits = await store.dense(vector.tolist(), where, K)
            run.latencies["dense"].append((time.perf_counter() - started) * 1000)
            started = time.perf_counter()
            exact = exact_top(matrices[tenant], vector)
            run.numpy.append((time.perf_counter() - started) * 1000)
            ids = {uuid.UUID(int=int(row) * data.TENANTS + tenant).hex for row in exact}
            run.recall.append(len({uuid.UUID(h.id).hex for h in hits} & ids) / K)
        # Dense again while small batches are appended, as a live projection does.
        appending = asyncio.create_task(append_small_batches(store, n))
        for q in range(queries):
            vector, where, _ = query(q)
            run.latencies["dense appending"].append(
                await timed(store.dense(vector.tolist(), where, K))
            )
        appending.cancel()
    finally:
        await store.close()
    return run


async def append_small_batches(store: VectorStore, n: int) -> None:
    """APPEND_BATCH new points every APPEND_EVERY seconds, until cancelled."""
    first = n
    while True:
        await store.upsert(data.points(first, APPEND_BATCH))
        first += APPEND_BATCH
        await asyncio.sleep(APPEND_EVERY)


def keep_peer_rows(work: Path, batch: data.Batch) -> None:
    """Append the queried tenants' vectors to a file each: the peer's matrices, read only after
    the store's peak RSS is taken."""
    tenants = (batch.first + np.arange(len(batch.vectors))) % data.TENANTS
    for tenant in QUERIED_TENANTS:
        with (work / f"tenant{tenant}.f32").open("ab") as out:
            out.write(batch.vectors[tenants == tenant].tobytes())


def exact_top(matrix: np.ndarray, query: np.ndarray) -> np.ndarray:
    """The peer: cosine top-k over one tenant's unit rows (a dot product)."""
    scores = matrix @ query
    top = np.argpartition(-scores, K)[:K]
    return top[np.argsort(-scores[top])]


def run_isolated(engine: str, n: int, queries: int, work: Path) -> Run:
    """measure_run in a fresh process (its own peak RSS), its data deleted afterwards."""
    out = work / f"{engine}-{n}.json"
    command = [sys.executable, "-m", "bench.search", "--one", engine, str(n), str(queries)]
    subprocess.run([*command, str(work / f"{engine}-{n}"), str(out)], check=True)
    shutil.rmtree(work / f"{engine}-{n}", ignore_errors=True)
    return Run(**json.loads(out.read_text()))


def size_name(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def latency_metrics(runs: list[Run]) -> list[Metric]:
    qdrant = {r.n: r for r in runs if r.engine == "qdrant"}
    metrics: list[Metric] = []
    for run in runs:
        size, other = size_name(run.n), qdrant.get(run.n)
        if run.engine == "embedded":
            peer_build = None if other is None else other.build_per_s
            metrics.append(
                Metric(
                    f"build {size} embedded",
                    "points/s",
                    run.build_per_s,
                    "qdrant local",
                    peer_build,
                )
            )
        for mode in MODES:
            for q in (50, 99):
                if mode == "dense":
                    peer, peer_value = PEER, percentile(run.numpy, q)
                elif run.engine == "embedded" and other is not None:
                    peer, peer_value = "qdrant local", percentile(other.latencies[mode], q)
                else:
                    peer, peer_value = None, None
                metrics.append(
                    Metric(
                        f"{mode} {size} p{q} {run.engine}",
                        "ms",
                        percentile(run.latencies[mode], q),
                        peer,
                        peer_value,
                        higher_is_better=False,
                    )
                )
        if run.latencies["dense appending"]:
            metrics += [
                Metric(
                    f"dense {size} p{q} {run.engine} appending",
                    "ms",
                    percentile(run.latencies["dense appending"], q),
                    "same, no appends",
                    percentile(run.latencies["dense"], q),
                    higher_is_better=False,
                )
                for q in (50, 99)
            ]
        metrics.append(
            Metric(
                f"dense {size} recall@10 {run.engine}",
                "ratio",
                float(np.mean(run.recall)),
                PEER,
                1.0,
            )
        )
        if run.engine == "embedded":
            metrics.append(
                Metric(f"peak RSS {size} embedded", "MiB", run.peak_rss_mib, higher_is_better=False)
            )
            metrics.append(
                Metric(f"disk {size} embedded", "MiB", run.disk_mib, higher_is_better=False)
            )
    return metrics


async def real_text_recall(work: Path) -> list[Metric]:
    """Recall@10 of dense queries on real embeddings (which cluster, unlike random ones): the
    first words of a paragraph, embedded by our model, against exact search over the corpus."""
    corpus = data.real_text()
    from services.inference.models.minilm import load_minilm

    rng = np.random.default_rng(data.SEED)
    picked = rng.choice(len(corpus.texts), size=RECALL_QUERIES, replace=False)
    queries = load_minilm().encode([" ".join(corpus.texts[i].split()[:8]) for i in picked])
    metrics = []
    for engine in ("embedded", "qdrant"):
        store = open_vector_store(Settings(data_dir=work / f"real-{engine}", search_engine=engine))
        await store.ensure()
        try:
            points = [
                domain.Point(
                    str(uuid.UUID(int=i)),
                    corpus.vectors[i].tolist(),
                    domain.term_counts(text),
                    {"tenant_id": "real", "document_id": f"d{i}", "atom_id": f"a{i}"},
                )
                for i, text in enumerate(corpus.texts)
            ]
            for start in range(0, len(points), data.BATCH):
                await store.upsert(points[start : start + data.BATCH])
            recall = []
            for query in queries:
                hits = await store.dense(query.tolist(), Filter("real"), K)
                exact = {str(uuid.UUID(int=int(i))) for i in exact_top(corpus.vectors, query)}
                recall.append(len({h.id for h in hits} & exact) / K)
        finally:
            await store.close()
        metrics.append(
            Metric(
                f"recall@10 real text {len(corpus.texts) // 1000}k {engine}",
                "ratio",
                float(np.mean(recall)),
                PEER,
                1.0,
            )
        )
    return metrics


async def ingest_to_searchable(work: Path) -> list[float]:
    """Milliseconds from appending a probe text's events (as ingest and inference would) to its
    chunk answering queries, through the running projection, while another tenant ingests
    LOAD_DOCS_PER_SECOND texts a second."""
    pg_url = embedded_postgres_url(work / "pgdata", cleanup="delete")
    log = EmbeddedEventLog(pg_url)
    await log.start()
    await log.ensure_topics(platform_topics())
    pool = await create_pool(pg_url, max_size=4)
    settings = Settings(data_dir=work / "data")
    store = open_vector_store(settings)
    await store.ensure()
    joins = JoinStore(pool)
    await joins.setup()
    deps = Deps(joins, store, open_blob_store(settings), await sealer_on(pool))
    consumer = ProjectionRunner(log, CODEC, search_projection(deps))
    task = asyncio.create_task(consumer.run())
    rng = np.random.default_rng(data.SEED)
    load = asyncio.create_task(_sustained_ingest(log, deps, rng))
    latencies: list[float] = []
    try:
        for i in range(PROBES):
            text = f"probe {i}: " + " ".join(f"w{w}" for w in rng.integers(0, 500, 40))
            records = await _text_events(deps, text.encode(), "bench", rng)
            started = time.perf_counter()
            await log.append(records)
            await _until_searchable(store, i + 1)
            latencies.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(0.1)
        assert not load.done(), "the sustained ingest stopped early"
    finally:
        load.cancel()
        consumer.stop()
        await task
        await store.close()
        await pool.close()
        await log.close()
    return latencies


async def _sustained_ingest(log: EmbeddedEventLog, deps: Deps, rng: np.random.Generator) -> None:
    """Another tenant's texts, LOAD_DOCS_PER_SECOND of them a second, until cancelled."""
    i = 0
    while True:
        started = time.perf_counter()
        text = f"load {i}: " + " ".join(f"w{w}" for w in rng.integers(0, 5000, 120))
        await log.append(await _text_events(deps, text.encode(), "load", rng))
        i += 1
        await asyncio.sleep(max(0.0, 1 / LOAD_DOCS_PER_SECOND - (time.perf_counter() - started)))


async def _until_searchable(store: VectorStore, n: int) -> None:
    async with asyncio.timeout(30):
        while await store.count("bench") < n:  # noqa: ASYNC110 (a store write has no event)
            await asyncio.sleep(0.002)


async def _text_events(
    deps: Deps, text: bytes, tenant: str, rng: np.random.Generator
) -> list[Record]:
    """A short text: AtomIngested, its single-chunk AtomChunked, its EmbeddingComputed."""

    async def once() -> AsyncIterator[bytes]:
        yield text

    atom = (await deps.blobs.put(once())).sha256
    vector = rng.normal(size=domain.DIM)
    payloads: list[Payload] = [
        AtomIngested(
            atom_id=atom, tenant_id=tenant, modality="text", mime_type="text/plain",
            size_bytes=len(text), blob_key=atom,
        ),
        AtomChunked(
            parent_atom_id=atom, tenant_id=tenant, chunker="bench",
            chunks=[TextChunk(index=0, atom_id=atom, start_char=0, end_char=len(text),
                              start_byte=0, end_byte=len(text))],
        ),
        EmbeddingComputed(
            atom_id=atom, tenant_id=tenant, model_id="bench", model_version="bench",
            dim=domain.DIM, vector=(vector / np.linalg.norm(vector)).tolist(), normalized=True,
        ),
    ]  # fmt: skip
    return [record_of(new_event(payload, tenant, produced_by="bench")) for payload in payloads]


async def measure() -> list[Metric]:
    work = Path(tempfile.mkdtemp(prefix="bench-search-"))
    try:
        runs = []
        for engine, n, queries in RUNS:
            print(f"search: {engine} at {n} chunks", flush=True)
            runs.append(run_isolated(engine, n, queries, work))
        metrics = latency_metrics(runs)
        metrics += await real_text_recall(work)
        print("search: ingest->searchable under a sustained ingest", flush=True)
        latencies = await ingest_to_searchable(work / "ingest")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return metrics + [
        Metric(f"ingest->searchable p{q}", "ms", percentile(latencies, q), higher_is_better=False)
        for q in (50, 95)
    ]


def main() -> None:
    started = datetime.now(UTC)
    path = write("search", asyncio.run(measure()))
    print(f"wrote {path} in {(datetime.now(UTC) - started).total_seconds():.0f} s", flush=True)


if __name__ == "__main__":  # one (engine, size) run in its own process: see run_isolated
    parser = argparse.ArgumentParser()
    parser.add_argument("--one", nargs=5, metavar=("ENGINE", "N", "QUERIES", "WORK", "OUT"))
    one = parser.parse_args().one
    engine, n, queries, work, out = one[0], int(one[1]), int(one[2]), Path(one[3]), Path(one[4])
    work.mkdir(parents=True, exist_ok=True)
    result = asyncio.run(measure_run(engine, n, queries, work))
    out.write_text(json.dumps(asdict(result)))

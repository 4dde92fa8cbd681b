"""Provenance: how fast the log becomes a graph, on the embedded graph and on Neo4j.

- Projection throughput (events/s): the events of ingest-like flows (AtomIngested, AtomChunked,
  EmbeddingComputed x3, UsageRecorded x2 per document, as tests/support/provenance_flow.py
  builds them) mapped and merged in batches of 500, as the projector writes them. The embedded
  graph is compared with Neo4j (the server a user would otherwise run), and batched Neo4j with
  Neo4j written one event per transaction (a projector without batching).
- Log -> graph lag (ms, p50/p95): the provenance service consuming the embedded log while flows
  are appended at a steady rate; a record's lag runs from its append to the log to the commit
  of the graph write that holds its facts.

Runs are interleaved (embedded, neo4j, neo4j one by one, ...) and medians reported.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench.common import Metric, median, percentile, write
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import StoredRecord
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec, decode_event
from hartonomous.postgres import embedded_postgres_url
from hartonomous.runtime.service import ServiceContext
from hartonomous.settings import Settings
from services.provenance.domain import Facts
from services.provenance.graph.embedded import EmbeddedGraphStore
from services.provenance.graph.neo4j import Neo4jGraphStore
from services.provenance.graph.port import GraphStore
from services.provenance.handlers import positions_after, project
from services.provenance.service import ProvenanceService
from tests.support.provenance_flow import Keyed, ingest_flow, records, stored

REPO = Path(__file__).resolve().parents[1]
NEO4J_SH = REPO / "deploy" / "local" / "neo4j.sh"
REPS = 3
FLOWS = 250  # 2000 events per batched run
SINGLE_FLOWS = 25  # 200 events per one-event-per-transaction run
BATCH = 500  # the projector's max_batch
RATE = 25  # flows per second during the lag run: 200 events/s
DURATION_S = 20
CODEC = AvroCodec()


def flow_events(n: int, tag: str) -> list[Keyed]:
    return [
        k
        for i in range(n)
        for k in ingest_flow(
            f"tenant-{i % 7}", f"{tag} document {i}: " + "words " * 40, f"{tag}/{i}.txt", f"r{i}"
        ).events
    ]


def neo4j_up() -> str:
    done = subprocess.run([str(NEO4J_SH), "up"], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()[-1]


def neo4j_store(uri: str, namespace: str) -> Neo4jGraphStore:
    password = os.environ.get("NEO4J_PASSWORD", "hartonomous-test")
    return Neo4jGraphStore(uri, "neo4j", password, namespace=namespace)


async def project_rate(store: GraphStore, batch: int, tag: str, flows: int) -> float:
    """Events/s mapped and written into an empty graph, `batch` records per transaction."""
    await store.clear()
    recs = stored(CODEC, flow_events(flows, tag))
    started = time.perf_counter()
    for i in range(0, len(recs), batch):
        part = recs[i : i + batch]
        facts = Facts()
        for record in part:
            facts.extend(project(decode_event(CODEC, record)))
        await store.apply(facts, positions_after(part))
    return len(recs) / (time.perf_counter() - started)


async def interleave(runs: Sequence[Callable[[int], Awaitable[float]]]) -> list[list[float]]:
    results: list[list[float]] = [[] for _ in runs]
    for rep in range(REPS):
        for i, run in enumerate(runs):
            results[i].append(await run(rep))
    return results


async def throughput(uri: str, workdir: Path) -> list[Metric]:
    embedded = EmbeddedGraphStore(workdir / "throughput.lbug")
    neo = neo4j_store(uri, f"Bench{uuid.uuid4().hex[:8]}")
    await embedded.open()
    await neo.open()
    try:
        ours, theirs, single = await interleave(
            [
                lambda rep: project_rate(embedded, BATCH, f"e{rep}", FLOWS),
                lambda rep: project_rate(neo, BATCH, f"n{rep}", FLOWS),
                lambda rep: project_rate(neo, 1, f"s{rep}", SINGLE_FLOWS),
            ]
        )
    finally:
        await neo.drop()
        await neo.close()
        await embedded.close()
    return [
        Metric(
            "embedded projection, batches of 500",
            "events/s",
            median(ours),
            "neo4j projection, batches of 500",
            median(theirs),
        ),
        Metric(
            "neo4j projection, batches of 500",
            "events/s",
            median(theirs),
            "neo4j, one event per transaction",
            median(single),
        ),
    ]


class Lags:
    """Milliseconds from append to graph commit of every record the projector wrote."""

    def __init__(self) -> None:
        self.values: list[float] = []
        self._grew = asyncio.Event()

    def observe(self, batch: Sequence[StoredRecord]) -> None:
        now = time.time()
        self.values.extend((now - r.timestamp.timestamp()) * 1000 for r in batch)
        self._grew.set()

    async def wait_for(self, count: int, timeout: float = 120.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.values) < count:
                self._grew.clear()
                await self._grew.wait()


async def lag(graph: Callable[[Settings], GraphStore], workdir: Path) -> list[float]:
    """Milliseconds from append to graph commit, per record, under a steady ingest-like load."""
    # The server removes its data at exit (it outlives this function), so not under workdir.
    pgdata = Path(tempfile.mkdtemp(prefix="bench-provenance-pg-")) / "pgdata"
    pg_url = embedded_postgres_url(pgdata, cleanup="delete")
    event_log = EmbeddedEventLog(pg_url)
    await event_log.start()
    await event_log.ensure_topics(platform_topics())
    lags = Lags()
    service = ProvenanceService(observer=lags.observe, graph=graph)
    wiring = await service.start(
        ServiceContext(Settings(data_dir=workdir), event_log, CODEC, pg_url)
    )
    (projector,) = wiring.consumers
    consuming = asyncio.create_task(projector.run())
    try:
        await service.store.clear()
        flows = [
            ingest_flow(f"tenant-{i % 7}", f"lag {i}: " + "words " * 40, f"{i}.txt", f"r{i}")
            for i in range(RATE * DURATION_S + 1)
        ]
        expected = 0
        started = time.monotonic()
        for i, flow in enumerate(flows):
            await asyncio.sleep(max(0.0, started + i / RATE - time.monotonic()))
            by_producer = [
                [k for k in flow.events if k.event.envelope.produced_by == producer]
                for producer in ("ingest", "inference")
            ]
            for events in by_producer:  # each service appends its events atomically
                await event_log.append_atomic(records(CODEC, events))
                expected += len(events)
            if i == 0:  # the first flow warms up the group join and the query plans
                await lags.wait_for(expected)
                lags.values.clear()
                expected, started = 0, time.monotonic()
        await lags.wait_for(expected)
        return lags.values
    finally:
        projector.stop()
        await consuming
        await service.stop()
        await event_log.close()


async def measure(uri: str, workdir: Path) -> list[Metric]:
    metrics = await throughput(uri, workdir)
    namespace = f"BenchLag{uuid.uuid4().hex[:8]}"
    embedded_lag = await lag(
        lambda settings: EmbeddedGraphStore(settings.data_dir / "lag.lbug"), workdir / "embedded"
    )
    neo4j_lag = await lag(lambda _: neo4j_store(uri, namespace), workdir / "neo4j")
    cleanup = neo4j_store(uri, namespace)
    await cleanup.open()
    await cleanup.drop()
    await cleanup.close()
    for q in (50, 95):
        metrics.append(
            Metric(
                f"embedded log->graph lag p{q} ({RATE * 8} events/s)",
                "ms",
                percentile(embedded_lag, q),
                f"neo4j log->graph lag p{q}",
                percentile(neo4j_lag, q),
                higher_is_better=False,
            )
        )
    return metrics


def main() -> None:
    uri = neo4j_up()
    with tempfile.TemporaryDirectory(prefix="bench-provenance-") as workdir:
        metrics = asyncio.run(measure(uri, Path(workdir)))
    path = write("provenance", metrics)
    print(f"wrote {path}", flush=True)

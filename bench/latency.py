"""The request path, one client, sequential: how long `POST /v1/search` (dense, sparse,
hybrid) and `POST /v1/embeddings` (batches of 64) take through the public API of a fresh
platform (`hartonomous up`, embedded defaults), and where each request's time goes.

Each request carries its own `traceparent`. The timed requests (the goals' figures) say "not
sampled": the platform records no span for them, as on `make run`, which exports none.
The same requests are then sent again sampled: the platform exports their spans over OTLP to a
receiver in this process (bench/_otlp.py), and each one's time is split into each part's own
time (the gateway's auth, the gRPC hops, the batcher's queue, the model, the store, the
metering append, ...) and the time outside the gateway's request span (HTTP client and
server). The budget prints as a table per request kind, with each part's p50, p99 and share,
under the traced requests' own p50 and p99 (recording and exporting spans costs CPU of its
own, on the same cores).

Corpus: CORPUS short documents (standard-library docstring paragraphs, 60-800 characters),
ingested through `POST /v1/atoms`, searchable, and the platform idle (its projections caught
up) before timing starts; queries of six words.
Embeddings: the same 64-text batches through the gateway and through `MiniLM.encode` in this
process (the batcher's own speed, the peer), texts/s; each side sends every batch once untimed
first, so neither times a compilation of a shape the batches need, then the two take turns,
EMBED_ROUNDS rounds of every batch each, so a change in the shared machine's speed meets both
(medians of the rounds' rates). Freshness: while SEARCHERS
clients search back to back, FRESH new documents are ingested one at a time, each polled with a
sparse search for a word only it has: the time from its ingest call returning to its first
hit, p50 and p95. Floors (bench/_floors.py): what each step of a search costs alone on this
machine, and so the least each mode can take.

BENCH_QUICK=1: 300 documents and 20 requests per kind (a smoke run; figures meaningless).
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np

from bench._floors import measure_floors
from bench._otlp import Receiver, budget, exporting_to, own_times, print_budget, receiving
from bench._platform import Platform, cpu_seconds, platform
from bench._search_data import stdlib_paragraphs
from bench.common import Metric, median, percentile, write
from services.inference.models.minilm import MiniLM, load_minilm

QUICK = os.environ.get("BENCH_QUICK") == "1"
CORPUS = 300 if QUICK else 3000
REQUESTS = 20 if QUICK else 300
WARMUP = 5 if QUICK else 30
BATCH = 64
EMBED_BATCHES = 4 if QUICK else 10
EMBED_ROUNDS = 2 if QUICK else 6
MODEL = "all-MiniLM-L6-v2"
# Goals (issue 22) on a quiet 2-core machine: p50 and p99 in ms.
GOALS = {"dense": (15, 40), "sparse": (5, 15), "hybrid": (20, 45)}
ENV = {
    "HARTONOMOUS_GATEWAY_RATE_PER_SECOND": "1000000",
    "HARTONOMOUS_GATEWAY_RATE_BURST": "1000000",
}
SPAN_WAIT_S = 30.0
SEARCHERS = 8
FRESH = 5 if QUICK else 30
FRESH_TIMEOUT_S = 30.0
QUIET_S = 3
Send = Callable[[httpx.Client, dict[str, str]], None]  # one request, with these headers


def _ingest(http: httpx.Client, texts: list[str]) -> None:
    """Every text as an atom; returns once the last one is searchable (bounded wait)."""
    marker = "zq" + uuid.uuid4().hex[:10]
    for i, text in enumerate(texts):
        content = f"{text} {marker}" if i == len(texts) - 1 else text
        http.post("/v1/atoms", json={"content": content}).raise_for_status()
        if i % 500 == 0:
            print(f"ingested {i}/{len(texts)}", file=sys.stderr, flush=True)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        found = http.post("/v1/search", json={"query": marker, "mode": "sparse"})
        if found.status_code == 200 and found.json()["results"]:
            return
        time.sleep(0.5)
    raise SystemExit("the corpus never became searchable")


def _quiet(pid: int) -> None:
    """Until the platform has digested the corpus (its projections, provenance and billing
    catch up after the last document is searchable): QUIET_S seconds in a row under 5% of a
    core, bounded by 10 minutes."""
    calm, deadline = 0, time.monotonic() + 600
    while calm < QUIET_S and time.monotonic() < deadline:
        before = cpu_seconds(pid)
        time.sleep(1.0)
        calm = calm + 1 if cpu_seconds(pid) - before < 0.05 else 0
    print(f"platform quiet: {calm >= QUIET_S}", file=sys.stderr, flush=True)


def _queries(texts: list[str], n: int) -> list[str]:
    """Six words from a random document each: queries that find something."""
    rng = random.Random(7)
    out: list[str] = []
    while len(out) < n:
        words = [w for w in rng.choice(texts).split() if w.isalpha()]
        if len(words) >= 6:
            start = rng.randrange(len(words) - 5)
            out.append(" ".join(words[start : start + 6]))
    return out


def _traceparent(sampled: bool) -> tuple[str, dict[str, str]]:
    """A new trace id and the header that starts it: sampled, its spans are exported to the
    receiver; not sampled, the platform records none (as on `make run`, which exports none)."""
    trace_id = uuid.uuid4().hex
    flags = "01" if sampled else "00"
    return trace_id, {"traceparent": f"00-{trace_id}-{uuid.uuid4().hex[:16]}-{flags}"}


def _timed(http: httpx.Client, sends: list[Send], sampled: bool) -> list[tuple[float, str]]:
    """Each request once, in turn: (ms, trace id)."""
    timed = []
    for send in sends:
        trace_id, headers = _traceparent(sampled)
        started = time.perf_counter()
        send(http, headers)
        timed.append(((time.perf_counter() - started) * 1000, trace_id))
    return timed


def _latencies(http: httpx.Client, sends: list[Send]) -> list[float]:
    """What a user of `make run` waits: no span recorded, none exported."""
    return [ms for ms, _ in _timed(http, sends, sampled=False)]


def _budgets(
    http: httpx.Client, receiver: Receiver, sends: list[Send]
) -> tuple[list[float], list[dict[str, float]]]:
    """The same requests traced: their latencies (exporting costs CPU of its own) and each
    one's budget from its spans."""
    timed = _timed(http, sends, sampled=True)
    deadline = time.monotonic() + SPAN_WAIT_S
    budgets: list[dict[str, float]] = []
    for ms, trace_id in timed:
        spans = receiver.spans(trace_id)
        while not spans and time.monotonic() < deadline:
            time.sleep(0.2)
            spans = receiver.spans(trace_id)
        budgets.append(own_times(spans, ms))
    return [ms for ms, _ in timed], budgets


def _search(mode: str, query: str) -> Send:
    def send(http: httpx.Client, headers: dict[str, str]) -> None:
        body = {"query": query, "mode": mode, "k": 10}
        http.post("/v1/search", json=body, headers=headers).raise_for_status()

    return send


def _embed(batch: list[str]) -> Send:
    def send(http: httpx.Client, headers: dict[str, str]) -> None:
        body = {"input": batch, "model": MODEL}
        http.post("/v1/embeddings", json=body, headers=headers).raise_for_status()

    return send


async def freshness(url: str, key: str, queries: list[str]) -> list[float]:
    """Seconds from a document's ingest call returning to its first sparse hit, for FRESH
    documents ingested one after another through the gateway at `url` while SEARCHERS
    clients search back to back."""
    headers = {"Authorization": f"Bearer {key}"}
    stop = asyncio.Event()

    async def searcher(n: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
            i = n
            while not stop.is_set():
                body = {"query": queries[i % len(queries)], "mode": "hybrid", "k": 10}
                _, untraced = _traceparent(sampled=False)
                (await http.post("/v1/search", json=body, headers=untraced)).raise_for_status()
                i += SEARCHERS

    load = [asyncio.create_task(searcher(n)) for n in range(SEARCHERS)]
    delays: list[float] = []
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as http:
        await asyncio.sleep(2.0)  # the load is running
        for _ in range(FRESH):
            marker = "fresh" + uuid.uuid4().hex[:12]
            content = {"content": f"A new note about {marker} and what it changes."}
            _, untraced = _traceparent(sampled=False)
            (await http.post("/v1/atoms", json=content, headers=untraced)).raise_for_status()
            ingested = time.perf_counter()
            while time.perf_counter() - ingested < FRESH_TIMEOUT_S:
                body = {"query": marker, "mode": "sparse"}
                found = await http.post("/v1/search", json=body, headers=untraced)
                if found.status_code == 200 and found.json()["results"]:
                    break
                await asyncio.sleep(0.02)
            delays.append(time.perf_counter() - ingested)
    stop.set()
    await asyncio.gather(*load)
    return delays


def _in_process_rate(model: MiniLM, batches: list[list[str]]) -> float:
    """The batcher's own speed on the same batches: MiniLM.encode in this process, texts/s."""
    started = time.perf_counter()
    for batch in batches:
        np.asarray(model.encode(batch, batch_size=BATCH))
    return sum(map(len, batches)) / (time.perf_counter() - started)


def _embeddings(
    http: httpx.Client, receiver: Receiver, model: MiniLM, batches: list[list[str]]
) -> tuple[Metric, list[float], list[dict[str, float]]]:
    """Gateway and MiniLM.encode in turns on the same batches: the rate metric; then the
    batches once more, traced: the gateway's latencies and budgets."""
    sends = [_embed(b) for b in batches]
    for batch, send in zip(batches, sends, strict=True):  # every shape compiled, both sides
        _latencies(http, [send])
        model.encode(batch, batch_size=BATCH)
    ours: list[float] = []
    peer: list[float] = []
    for _ in range(EMBED_ROUNDS):
        ms = _latencies(http, sends)
        ours.append(BATCH * len(ms) / (sum(ms) / 1000))
        peer.append(_in_process_rate(model, batches))
    label = f"/v1/embeddings, batches of {BATCH}"
    rate = Metric(label, "texts/s", median(ours), "MiniLM.encode", median(peer))
    return rate, *_budgets(http, receiver, sends)


def measure(receiver: Receiver, target: Platform, data_dir: Path, texts: list[str]) -> list[Metric]:
    metrics: list[Metric] = []
    headers = {"Authorization": f"Bearer {target.key}"}
    model = load_minilm()
    with httpx.Client(base_url=target.url, headers=headers, timeout=120) as http:
        _ingest(http, texts)
        _quiet(target.pid)
        queries = _queries(texts, WARMUP + REQUESTS)
        floors = measure_floors(http, data_dir, model, queries[0])
        floors.print()
        for mode, (goal_p50, goal_p99) in GOALS.items():
            sends = [_search(mode, q) for q in queries]
            _latencies(http, sends[:WARMUP])
            latencies = _latencies(http, sends[WARMUP:])
            traced, parts = _budgets(http, receiver, sends[WARMUP:])
            p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
            print(f"\n{mode} search: p50 {p50:.1f} ms, p99 {p99:.1f} ms over {REQUESTS} requests")
            print_budget(budget(parts, traced), traced)
            goal = "goal (issue 22)"
            metrics.append(Metric(f"{mode} search p50", "ms", p50, goal, goal_p50, False))
            metrics.append(Metric(f"{mode} search p99", "ms", p99, goal, goal_p99, False))
            floor = floors.search(mode)
            metrics.append(
                Metric(f"{mode} search p50", "ms", p50, "its steps' floor", floor, False)
            )
        delays_ms = [1000 * s for s in asyncio.run(freshness(target.url, target.key, queries))]
        fresh = percentile(delays_ms, 95)
        print(
            f"\ningest -> searchable with {SEARCHERS} clients searching: p50"
            f" {percentile(delays_ms, 50):.0f} ms, p95 {fresh:.0f} ms over {FRESH} documents"
        )
        label = f"ingest -> searchable p95, {SEARCHERS} searching"
        metrics.append(Metric(label, "ms", fresh, "goal (issue 22)", 1000, False))
        _quiet(target.pid)
        rng = random.Random(11)
        batches = [rng.sample(texts, BATCH) for _ in range(EMBED_BATCHES)]
        rate, traced, parts = _embeddings(http, receiver, model, batches)
        print(
            f"\nembeddings, batches of {BATCH}: {rate.value:.0f} texts/s, in-process {rate.peer_value:.0f}"
        )
        print_budget(budget(parts, traced), traced)
        metrics.append(rate)
    return metrics


def main() -> None:
    texts = stdlib_paragraphs(CORPUS)
    with (
        receiving() as receiver,
        tempfile.TemporaryDirectory(prefix="bench-latency-") as scratch,
        platform(data_dir := Path(scratch) / "data", {**ENV, **exporting_to(receiver)}) as target,
    ):
        metrics = measure(receiver, target, data_dir, texts)
    print(f"wrote {write('latency', metrics)}", file=sys.stderr)


if __name__ == "__main__":
    main()

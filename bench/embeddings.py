"""Embeddings: sentences/second through our whole gRPC path — an in-process grpc.aio server
and 16 concurrent clients sending 32 texts per Embed call, the shared micro-batcher, the JAX
model, and one UsageRecorded per call on the embedded log — beside sentence-transformers
(torch, CPU) encoding the same 2,000 texts with batch_size=64 from the same local model
files. Runs alternate (ours, MiniLM.encode without the service, theirs) and medians are
reported. Also: the latency of a 1-text Embed call under 16 concurrent clients, and peak RSS
of each side (ours: the service's, measured before torch is imported; theirs in a fresh
process).

Needs the `bench` extra (sentence-transformers, torch): `make bench` installs it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import grpc

from bench.common import Metric, median, percentile, write
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec
from hartonomous.postgres import embedded_postgres_url
from hartonomous.runtime.grpc_server import GrpcHost
from hartonomous.runtime.service import ServiceContext
from hartonomous.settings import Settings
from hartonomous.v1 import inference_pb2, inference_pb2_grpc
from services.inference.models.minilm import MiniLM, default_model_dir, load_minilm
from services.inference.service import InferenceService, WarmupPlan

TEXTS = 2_000
WORDS_PER_TEXT = (8, 40)
SEED = 20_260_521
REPS = 5
CLIENTS = 16
TEXTS_PER_CALL = 32
LATENCY_CALLS = 50  # per client
PEER = "sentence-transformers (torch CPU)"
PEER_BATCH_SIZE = 64

# Peak RSS of sentence-transformers alone: a fresh interpreter loads it and encodes the texts.
# VmHWM, not ru_maxrss: a child's ru_maxrss starts at its parent's peak (Linux keeps it
# across fork and exec), so it would report at least ours.
PEER_RSS = """
import json, re, sys
from sentence_transformers import SentenceTransformer
texts = json.load(sys.stdin)
SentenceTransformer(sys.argv[1], device="cpu").encode(texts, batch_size=int(sys.argv[2]))
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
"""


def bench_texts() -> list[str]:
    """2,000 texts of 8-40 words drawn (fixed seed) from the model card's own prose."""
    card = (default_model_dir() / "README.md").read_text()
    words = re.findall(r"[A-Za-z][A-Za-z'-]*", card.split("---", 2)[-1])
    rng = random.Random(SEED)
    return [" ".join(rng.choices(words, k=rng.randint(*WORDS_PER_TEXT))) for _ in range(TEXTS)]


def require_peer() -> None:
    missing = [m for m in ("sentence_transformers", "torch") if importlib.util.find_spec(m) is None]
    if missing:
        raise SystemExit(
            f"bench/embeddings needs {', '.join(missing)} (the `bench` extra): run `make bench`,"
            " which installs requirements-bench.lock"
        )


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def peer_peak_rss_mib(texts: list[str]) -> float:
    done = subprocess.run(
        [sys.executable, "-c", PEER_RSS, str(default_model_dir()), str(PEER_BATCH_SIZE)],
        input=json.dumps(texts),
        capture_output=True,
        text=True,
        check=True,
    )
    return int(done.stdout.split()[-1]) / 1024


async def grpc_rate(stub: inference_pb2_grpc.InferenceStub, texts: list[str]) -> float:
    """Sentences/s: CLIENTS concurrent callers drain one queue of TEXTS_PER_CALL-text calls."""
    calls: Iterator[list[str]] = (
        texts[i : i + TEXTS_PER_CALL] for i in range(0, len(texts), TEXTS_PER_CALL)
    )

    async def client() -> None:
        for chunk in calls:  # shared: each call is taken by exactly one client
            await stub.Embed(inference_pb2.EmbedRequest(texts=chunk, tenant_id="bench"))

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(CLIENTS)))
    return len(texts) / (time.perf_counter() - started)


async def latencies(stub: inference_pb2_grpc.InferenceStub, texts: list[str]) -> list[float]:
    """Milliseconds per 1-text Embed call while CLIENTS callers keep the service busy."""
    seen: list[float] = []

    async def client(offset: int) -> None:
        for i in range(LATENCY_CALLS):
            text = texts[(offset * LATENCY_CALLS + i) % len(texts)]
            started = time.perf_counter()
            await stub.Embed(inference_pb2.EmbedRequest(texts=[text], tenant_id="bench"))
            seen.append((time.perf_counter() - started) * 1000)

    await asyncio.gather(*(client(c) for c in range(CLIENTS)))
    return seen


def timed(encode: Callable[[list[str]], Any], texts: list[str]) -> float:
    started = time.perf_counter()
    encode(texts)
    return len(texts) / (time.perf_counter() - started)


async def interleave(runs: list[Callable[[], Awaitable[float]]]) -> list[list[float]]:
    results: list[list[float]] = [[] for _ in runs]
    for _ in range(REPS):
        for i, run in enumerate(runs):
            results[i].append(await run())
            await asyncio.sleep(0.5)  # let the other side's worker threads go idle
    return results


async def measure(texts: list[str]) -> list[Metric]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-embeddings-"))
    pg_url = embedded_postgres_url(scratch / "pgdata", cleanup="delete")
    log = EmbeddedEventLog(pg_url)
    await log.start()
    await log.ensure_topics(platform_topics())
    model = load_minilm()
    service = InferenceService(model=model, warmup=WarmupPlan(wait=True, cache=False))
    ctx = ServiceContext(Settings(data_dir=scratch / "data"), log, AvroCodec(), pg_url)
    wiring = await service.start(ctx)
    host = GrpcHost("127.0.0.1", 0)
    port = await host.start(wiring.grpc)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = inference_pb2_grpc.InferenceStub(channel)  # type: ignore[no-untyped-call]
            return await compare(stub, model, texts)
    finally:
        await host.stop(grace=0)
        await service.stop()
        await log.close()


async def compare(
    stub: inference_pb2_grpc.InferenceStub, model: MiniLM, texts: list[str]
) -> list[Metric]:
    await grpc_rate(stub, texts)  # compiles any shape the warm-up plan left out
    # The service's peak: before torch is in the process, and before MiniLM.encode, whose
    # jit-compiled shapes (~180 MiB) are a second copy the service never loads.
    ours_rss = peak_rss_mib()
    model.encode(texts)
    theirs_rss = peer_peak_rss_mib(texts)

    from sentence_transformers import SentenceTransformer

    peer = SentenceTransformer(str(default_model_dir()), device="cpu")

    def theirs(batch: list[str]) -> Any:
        return peer.encode(batch, batch_size=PEER_BATCH_SIZE)

    theirs(texts)
    ours, direct, peer_rates = await interleave(
        [
            lambda: grpc_rate(stub, texts),
            lambda: asyncio.to_thread(timed, model.encode, texts),
            lambda: asyncio.to_thread(timed, theirs, texts),
        ]
    )
    lat = await latencies(stub, texts)
    return [
        Metric(
            f"Embed over gRPC, {CLIENTS} clients x {TEXTS_PER_CALL} texts",
            "sentences/s",
            median(ours),
            PEER,
            median(peer_rates),
        ),
        Metric("MiniLM.encode, no service", "sentences/s", median(direct)),
        Metric(
            f"Embed 1 text, {CLIENTS} concurrent, p50", "ms", percentile(lat, 50), None, None, False
        ),
        Metric(
            f"Embed 1 text, {CLIENTS} concurrent, p99", "ms", percentile(lat, 99), None, None, False
        ),
        Metric("peak RSS", "MiB", ours_rss, PEER, theirs_rss, False),
    ]


def main() -> None:
    require_peer()
    texts = bench_texts()
    path = write("embeddings", asyncio.run(measure(texts)))
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    main()

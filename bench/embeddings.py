"""Embeddings: sentences/second through our whole gRPC path — an in-process grpc.aio server
and 16 concurrent clients sending 32 texts per Embed call, the shared micro-batcher, the JAX
model, and one UsageRecorded per call on the embedded log — beside sentence-transformers
(torch) encoding the same 2,000 texts from the same local model files: on the CPU with
batch_size=64, or on CUDA with batch_size=256 when JAX runs on a GPU. Runs alternate (ours,
MiniLM.encode without the service, theirs) and medians are reported. Also: the latency of a
1-text Embed call under 16 concurrent clients, and peak RSS of each side.

sentence-transformers runs in a process of its own, on one thread of its own: torch's OpenMP
team belongs to the thread that calls it, and a run on a thread new to torch was measured
25% slower than the next one on the same thread (99 against 129 sentences/s), so a peer
sharing our process and its thread pools would be measured slow.

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
import jax

from bench.common import Metric, median, percentile, write
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec
from hartonomous.modelfiles import minilm_model_dir
from hartonomous.postgres import embedded_postgres_url
from hartonomous.runtime.grpc_server import GrpcHost
from hartonomous.runtime.service import ServiceContext
from hartonomous.settings import Settings
from hartonomous.v1 import inference_pb2, inference_pb2_grpc
from services.inference.models.minilm import MiniLM, load_minilm
from services.inference.service import InferenceService, WarmupPlan

TEXTS = 2_000
WORDS_PER_TEXT = (8, 40)
SEED = 20_260_521
REPS = 7
CLIENTS = 16
TEXTS_PER_CALL = 32
LATENCY_CALLS = 50  # per client
# The peer runs where our model runs, at the batch size the issue names for that device.
PEER_DEVICE, PEER_BATCH_SIZE = ("cuda", 256) if jax.default_backend() == "gpu" else ("cpu", 64)
PEER = f"sentence-transformers (torch {PEER_DEVICE.upper()})"

# The peer's process: reads the texts (one JSON line), encodes them once to warm up, then
# answers each "run" line with its sentences/s; at end of input it prints its peak RSS in
# KiB: VmHWM, not ru_maxrss, which a child inherits from its parent across fork and exec.
PEER_PROCESS = """
import json, re, sys, time
from sentence_transformers import SentenceTransformer
model_dir, batch_size, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
texts = json.loads(sys.stdin.readline())
peer = SentenceTransformer(model_dir, device=device)
peer.encode(texts, batch_size=batch_size)
print("ready", flush=True)
for line in sys.stdin:
    started = time.perf_counter()
    peer.encode(texts, batch_size=batch_size)
    print(len(texts) / (time.perf_counter() - started), flush=True)
print(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1), flush=True)
"""


def bench_texts() -> list[str]:
    """2,000 texts of 8-40 words drawn (fixed seed) from the model card's own prose."""
    card = (minilm_model_dir() / "README.md").read_text()
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


class PeerProcess:
    """sentence-transformers in a child process, encoding the texts on request."""

    def __init__(self, texts: list[str]) -> None:
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                PEER_PROCESS,
                str(minilm_model_dir()),
                str(PEER_BATCH_SIZE),
                PEER_DEVICE,
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._send(json.dumps(texts))
        if (answer := self._answer()) != "ready":
            raise RuntimeError(f"the sentence-transformers process answered {answer!r}")

    def _send(self, line: str) -> None:
        assert self._process.stdin is not None
        self._process.stdin.write(line + "\n")
        self._process.stdin.flush()

    def _answer(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise RuntimeError(f"the sentence-transformers process exited ({self._process.wait()})")
        return line.strip()

    def rate(self) -> float:
        """Sentences/s of one encode of every text."""
        self._send("run")
        return float(self._answer())

    def close(self) -> float:
        """End the process; its peak RSS in MiB."""
        assert self._process.stdin is not None
        self._process.stdin.close()
        peak_kib = int(self._answer())
        self._process.wait()
        return peak_kib / 1024


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


async def interleave(runs: dict[str, Callable[[], Awaitable[float]]]) -> list[list[float]]:
    """REPS rounds of every run in turn; each round's rates go to stderr as it ends."""
    results: list[list[float]] = [[] for _ in runs]
    for rep in range(1, REPS + 1):
        for i, run in enumerate(runs.values()):
            results[i].append(await run())
            await asyncio.sleep(0.5)  # let the other side's worker threads go idle
        rates = ", ".join(
            f"{name} {rate[-1]:.1f}" for name, rate in zip(runs, results, strict=True)
        )
        print(f"round {rep}/{REPS} (sentences/s): {rates}", file=sys.stderr, flush=True)
    return results


async def measure(texts: list[str]) -> list[Metric]:
    scratch = Path(tempfile.mkdtemp(prefix="bench-embeddings-"))
    pg_url = embedded_postgres_url(scratch / "pgdata", cleanup="delete")
    event_log = EmbeddedEventLog(pg_url)
    await event_log.start()
    await event_log.ensure_topics(platform_topics())
    model = load_minilm()
    service = InferenceService(
        model=model, warmup=WarmupPlan(wait=True, cache=False), generation=None
    )
    ctx = ServiceContext(Settings(data_dir=scratch / "data"), event_log, AvroCodec(), pg_url)
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
        await event_log.close()


async def compare(
    stub: inference_pb2_grpc.InferenceStub, model: MiniLM, texts: list[str]
) -> list[Metric]:
    await grpc_rate(stub, texts)  # compiles any shape the warm-up plan left out
    # The service's peak: before MiniLM.encode, whose jit-compiled shapes (~180 MiB) are a
    # second copy the service never loads.
    ours_rss = peak_rss_mib()
    model.encode(texts)
    peer = await asyncio.to_thread(PeerProcess, texts)
    try:
        ours, direct, peer_rates = await interleave(
            {
                "gRPC": lambda: grpc_rate(stub, texts),
                "MiniLM.encode": lambda: asyncio.to_thread(timed, model.encode, texts),
                "sentence-transformers": lambda: asyncio.to_thread(peer.rate),
            }
        )
    finally:
        theirs_rss = await asyncio.to_thread(peer.close)
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

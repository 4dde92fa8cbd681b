"""Gateway: requests/second and p50/p95/p99 latency of `POST /v1/search` and
`POST /v1/embeddings` at 16 and 64 concurrent clients (an async aiohttp load generator on
loopback, one connection per client), against the real platform process (`hartonomous up` on
a scratch data dir) once inference has compiled its warm-up shapes
(`hartonomous_inference_shapes_to_compile` 0). The
peer is what a client inside the cluster would otherwise use: the same services called over
gRPC directly, with the same concurrency. The gap is the price of the public surface: HTTP and
JSON, authentication, the rate limiter, the quota check (one more gRPC call) and access logs.

Runs alternate (gateway, gRPC, gateway, ...) for a fixed time each; medians of REPS runs.
The load generator shares the machine's cores with the platform, as it would on one box, so
each side's CPU per request is measured too: the load generator's and the platform process's
(what the public surface adds). The HTTP client is aiohttp, whose CPU per request is about a
gRPC client's (0.3 ms); httpx costs ~0.8 ms, which the platform would lose to it on 2 cores."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import grpc

from bench._platform import Platform, cpu_seconds, platform
from bench.common import Metric, median, percentile, write
from hartonomous.v1 import inference_pb2, inference_pb2_grpc, search_pb2, search_pb2_grpc

CLIENTS = (16, 64)
SECONDS = 6.0
WARMUP_SECONDS = 2.0
REPS = 3
PEER = "gRPC direct (same services)"
MODEL = "all-MiniLM-L6-v2"
# The platform's own rate limit would measure itself: lifted for the benchmark.
ENV = {
    "HARTONOMOUS_GATEWAY_RATE_PER_SECOND": "1000000",
    "HARTONOMOUS_GATEWAY_RATE_BURST": "1000000",
}
WORDS = [
    "ledger",
    "atoms",
    "replay",
    "audit",
    "tensor",
    "chunk",
    "search",
    "vector",
    "billing",
    "quota",
    "trace",
    "event",
]

Send = Callable[[int], Awaitable[bool]]


@dataclass(frozen=True)
class Run:
    rate: float  # requests/s
    latencies_ms: list[float]
    errors: int
    client_cpu_ms: float  # the load generator's CPU per answered request
    platform_cpu_ms: float  # the platform process's (nan when it is several processes)

    @property
    def error_rate(self) -> float:
        total = len(self.latencies_ms) + self.errors
        return 100.0 * self.errors / total if total else 0.0


async def open_clients(
    stack: contextlib.AsyncExitStack, urls: Sequence[str], key: str, n: int
) -> list[aiohttp.ClientSession]:
    """`n` HTTP clients of one connection each, dealt over the gateways at `urls` in turn, as
    independent callers would be (closed with `stack`)."""
    headers = {"Authorization": f"Bearer {key}"}
    timeout = aiohttp.ClientTimeout(total=60)
    return [
        await stack.enter_async_context(
            aiohttp.ClientSession(
                base_url=urls[i % len(urls)],
                headers=headers,
                timeout=timeout,
                connector=aiohttp.TCPConnector(limit=1),
            )
        )
        for i in range(n)
    ]


async def seed(http: aiohttp.ClientSession) -> None:
    """A small corpus to search, and wait (bounded) until the last text is searchable."""
    marker = "zq" + uuid.uuid4().hex[:8]
    for n in range(20):
        words = " ".join(WORDS[(n + i) % len(WORDS)] for i in range(40))
        text = f"Note {n}: {words}." + (f" {marker}" if n == 19 else "")
        async with http.post("/v1/atoms", json={"content": text}) as created:
            created.raise_for_status()
    for _ in range(240):
        async with http.post("/v1/search", json={"query": marker, "mode": "sparse"}) as found:
            if found.status == 200 and (await found.json())["results"]:
                return
        await asyncio.sleep(0.5)
    raise SystemExit("the seeded corpus never became searchable")


def query(n: int) -> str:
    return f"{WORDS[n % len(WORDS)]} {WORDS[(n * 7) % len(WORDS)]} n{n % 97}"


def gateway_senders(http_clients: Sequence[aiohttp.ClientSession]) -> dict[str, Send]:
    """Request n goes out on client n % len(http_clients): `load` numbers each simulated
    client's requests offset, offset + clients, ..., so no two share an HTTP client at once."""

    async def post(n: int, path: str, body: dict[str, object]) -> bool:
        async with http_clients[n % len(http_clients)].post(path, json=body) as reply:
            await reply.read()
            return bool(reply.status == 200)

    async def search(n: int) -> bool:
        return await post(n, "/v1/search", {"query": query(n), "k": 5, "mode": "hybrid"})

    async def embed(n: int) -> bool:
        return await post(n, "/v1/embeddings", {"input": query(n), "model": MODEL})

    return {"search": search, "embeddings": embed}


def grpc_senders(channel: grpc.aio.Channel, tenant_id: str) -> dict[str, Send]:
    searcher = search_pb2_grpc.SearchStub(channel)  # type: ignore[no-untyped-call]
    embedder = inference_pb2_grpc.InferenceStub(channel)  # type: ignore[no-untyped-call]

    async def search(n: int) -> bool:
        request = search_pb2.SearchRequest(
            tenant_id=tenant_id, query=query(n), k=5, mode=search_pb2.SEARCH_MODE_HYBRID
        )
        await searcher.Search(request, timeout=60)
        return True

    async def embed(n: int) -> bool:
        await embedder.Embed(
            inference_pb2.EmbedRequest(texts=[query(n)], tenant_id=tenant_id), timeout=60
        )
        return True

    return {"search": search, "embeddings": embed}


async def load(send: Send, clients: int, seconds: float, pid: int | None = None) -> Run:
    """`clients` loops sending back to back for `seconds`; failures count as errors. `pid`:
    the platform's process, whose CPU is counted (none: not counted)."""
    latencies: list[float] = []
    errors = 0

    def platform_cpu_s() -> float:
        return cpu_seconds(pid) if pid is not None else float("nan")

    client_cpu, platform_cpu = time.process_time(), platform_cpu_s()
    started = time.perf_counter()
    stop_at = started + seconds

    async def client(offset: int) -> None:
        nonlocal errors
        n = offset
        while time.perf_counter() < stop_at:
            sent = time.perf_counter()
            try:
                ok = await send(n)
            except (aiohttp.ClientError, TimeoutError, grpc.aio.AioRpcError):
                ok = False
            if ok:
                latencies.append((time.perf_counter() - sent) * 1000)
            else:
                errors += 1
            n += clients

    await asyncio.gather(*(client(i) for i in range(clients)))
    elapsed = time.perf_counter() - started
    answered = max(1, len(latencies))
    return Run(
        len(latencies) / elapsed,
        latencies,
        errors,
        (time.process_time() - client_cpu) * 1000 / answered,
        (platform_cpu_s() - platform_cpu) * 1000 / answered,
    )


async def measure(target: Platform) -> list[Metric]:
    async with (
        contextlib.AsyncExitStack() as stack,
        grpc.aio.insecure_channel(target.grpc_target) as channel,
    ):
        http_clients = await open_clients(stack, [target.url], target.key, max(CLIENTS))
        await seed(http_clients[0])
        sides = {
            "gateway": gateway_senders(http_clients),
            "grpc": grpc_senders(channel, target.tenant_id),
        }
        metrics: list[Metric] = []
        for endpoint in ("search", "embeddings"):
            for clients in CLIENTS:
                runs: dict[str, list[Run]] = {"gateway": [], "grpc": []}
                for senders in sides.values():  # warm both paths at this concurrency
                    await load(senders[endpoint], clients, WARMUP_SECONDS, target.pid)
                for _ in range(REPS):
                    for side, senders in sides.items():
                        run = await load(senders[endpoint], clients, SECONDS, target.pid)
                        runs[side].append(run)
                metrics += _metrics(f"POST /v1/{endpoint} @{clients}", runs)
                print(f"   {endpoint} @{clients} done", file=sys.stderr, flush=True)
        return metrics


def _metrics(label: str, runs: dict[str, list[Run]]) -> list[Metric]:
    def summary(side: str) -> dict[str, float]:
        return {
            "rate": median([r.rate for r in runs[side]]),
            "p50": median([percentile(r.latencies_ms, 50) for r in runs[side]]),
            "p95": median([percentile(r.latencies_ms, 95) for r in runs[side]]),
            "p99": median([percentile(r.latencies_ms, 99) for r in runs[side]]),
            "errors": median([r.error_rate for r in runs[side]]),
            "client_cpu": median([r.client_cpu_ms for r in runs[side]]),
            "platform_cpu": median([r.platform_cpu_ms for r in runs[side]]),
        }

    ours, peer = summary("gateway"), summary("grpc")
    out = [Metric(f"{label} throughput", "req/s", ours["rate"], PEER, peer["rate"])]
    for q in ("p50", "p95", "p99"):
        out.append(
            Metric(f"{label} {q} latency", "ms", ours[q], PEER, peer[q], higher_is_better=False)
        )
    out.append(Metric(f"{label} error rate", "%", ours["errors"], PEER, peer["errors"], False))
    for side, name in (("client_cpu", "load generator"), ("platform_cpu", "platform")):
        label_cpu = f"{label} {name} CPU per request"
        out.append(Metric(label_cpu, "ms", ours[side], PEER, peer[side], higher_is_better=False))
    return out


def main() -> None:
    with (
        tempfile.TemporaryDirectory(prefix="bench-gateway-") as scratch,
        platform(Path(scratch) / "data", ENV) as target,
    ):
        metrics = asyncio.run(measure(target))
    print(f"wrote {write('gateway', metrics)}", file=sys.stderr)


if __name__ == "__main__":
    main()

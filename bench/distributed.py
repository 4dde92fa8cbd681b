"""What the process boundaries cost: the same load against three deployments on this machine,
one after the other. `hartonomous up` (every service in one process, embedded engines: the
peer), and deploy/local/cluster.sh with one and with two replicas of the gateway, inference and
search (every service its own process, on Kafka, PostgreSQL, Neo4j and S3 servers).

Per deployment, once inference has compiled its warm-up shapes: ingest -> searchable p50 and
p95 (bench/latency.py's freshness: documents ingested one at a time while 8 clients search,
each polled with a sparse search until found), then requests/s of `POST /v1/search` (hybrid)
and `POST /v1/embeddings` at 16 and 64 clients (bench/gateway.py's load), the clients spread
over the gateways as a load balancer would. Medians of REPS runs. Ratios > 1: the distributed
topology does better than the one process. On one 2-core machine the extra processes only add
work (each its own interpreter, gRPC and Kafka hops instead of calls); on Kubernetes each
replica would have cores of its own.

BENCH_QUICK=1: one short run per point (a smoke run; figures meaningless).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

from bench._platform import platform, warm
from bench.common import Metric, median, percentile, write
from bench.gateway import Run, gateway_senders, load, open_clients, query, seed
from bench.latency import freshness
from tests.support.cluster import running_cluster

QUICK = os.environ.get("BENCH_QUICK") == "1"
CLIENTS = (16, 64)
SECONDS = 2.0 if QUICK else 6.0
WARMUP_SECONDS = 1.0 if QUICK else 2.0
REPS = 1 if QUICK else 3
WARM_TIMEOUT_S = 900
PEER = "one process (hartonomous up)"
# The platform's own rate limit would measure itself: lifted for the benchmark.
ENV = {
    "HARTONOMOUS_GATEWAY_RATE_PER_SECOND": "1000000",
    "HARTONOMOUS_GATEWAY_RATE_BURST": "1000000",
}


@dataclass(frozen=True)
class Target:
    urls: tuple[str, ...]  # the gateways
    key: str


@contextlib.contextmanager
def one_process(scratch: Path) -> Iterator[Target]:
    with platform(scratch / "data", ENV) as started:
        yield Target((started.url,), started.key)


@contextlib.contextmanager
def cluster(scratch: Path, replicas: int) -> Iterator[Target]:
    settings = {**ENV, "CLUSTER_REPLICAS": str(replicas), "CLUSTER_GENERATION_SLOTS": "0"}
    with running_cluster(scratch / "cluster", settings) as started:
        started.cli("tenants", "create", "bench")
        created = started.cli("keys", "create", "--tenant", "bench", "--role", "writer")
        if created.returncode != 0:
            raise SystemExit(f"no key for the bench tenant: {created.stderr}")
        metrics = [
            f"http://127.0.0.1:{started.metrics_port(f'inference-{n}')}/metrics"
            for n in range(1, replicas + 1)
        ]
        deadline = time.monotonic() + WARM_TIMEOUT_S
        while not all(_warmed(url) for url in metrics):
            if time.monotonic() > deadline:
                raise SystemExit("inference did not finish its warm-up")
            time.sleep(1)
        yield Target(started.urls, created.stdout.strip().splitlines()[-1])


def _warmed(metrics_url: str) -> bool:
    with contextlib.suppress(httpx.HTTPError):
        return warm(metrics_url)
    return False


async def measure(target: Target) -> dict[str, float]:
    """ingest -> searchable p50/p95 (ms), and req/s per endpoint and client count."""
    async with contextlib.AsyncExitStack() as stack:
        # One connection per simulated client, the clients dealt over the gateways in turn.
        http_clients = await open_clients(stack, target.urls, target.key, max(CLIENTS))
        await seed(http_clients[0])
        delays = await freshness(target.urls[0], target.key, [query(n) for n in range(97)])
        figures = {
            "fresh p50": 1000 * percentile(delays, 50),
            "fresh p95": 1000 * percentile(delays, 95),
        }
        senders = gateway_senders(http_clients)
        for endpoint in ("search", "embeddings"):
            for clients in CLIENTS:
                await load(senders[endpoint], clients, WARMUP_SECONDS)
                runs: list[Run] = [
                    await load(senders[endpoint], clients, SECONDS) for _ in range(REPS)
                ]
                errors = sum(r.errors for r in runs)
                if errors:
                    print(f"   {endpoint} @{clients}: {errors} errors", file=sys.stderr)
                figures[f"{endpoint} @{clients}"] = median([r.rate for r in runs])
        return figures


def _metrics(label: str, ours: dict[str, float], peer: dict[str, float] | None) -> list[Metric]:
    """`label`'s figures, each against the one process's (none for the one process itself)."""
    name = PEER if peer is not None else None

    def against(key: str) -> float | None:
        return peer[key] if peer is not None else None

    out = [
        Metric(
            f"{label}: ingest->searchable {q}",
            "ms",
            ours[f"fresh {q}"],
            name,
            against(f"fresh {q}"),
            False,
        )
        for q in ("p50", "p95")
    ]
    for endpoint in ("search", "embeddings"):
        for clients in CLIENTS:
            key = f"{endpoint} @{clients}"
            out.append(
                Metric(f"{label}: {endpoint} @{clients}", "req/s", ours[key], name, against(key))
            )
    return out


def main() -> None:
    deployments: dict[str, Callable[[Path], contextlib.AbstractContextManager[Target]]] = {
        "1 process": one_process,
        "distributed x1": partial(cluster, replicas=1),
        "distributed x2": partial(cluster, replicas=2),
    }
    figures: dict[str, dict[str, float]] = {}
    for label, deploy in deployments.items():
        with (
            tempfile.TemporaryDirectory(prefix="bench-distributed-") as scratch,
            deploy(Path(scratch)) as target,
        ):
            figures[label] = asyncio.run(measure(target))
        print(f"   {label}: {figures[label]}", file=sys.stderr, flush=True)
    peer = figures["1 process"]
    metrics = _metrics("1 process", peer, None)
    for label in ("distributed x1", "distributed x2"):
        metrics += _metrics(label, figures[label], peer)
    print(f"wrote {write('distributed', metrics)}", file=sys.stderr)


if __name__ == "__main__":
    main()

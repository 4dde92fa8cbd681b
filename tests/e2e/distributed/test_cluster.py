"""The distributed topology (`deploy/local/cluster.sh`): every service its own process on real
Kafka, PostgreSQL, Neo4j and S3 servers, two replicas each of the gateway, inference and search.
A document ingested through one gateway is searchable through the other (both search replicas
keep a full projection, so every round-robin answer finds it), explained from the Neo4j graph
and billed; the script stops everything it started."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import httpx
import pytest

from tests.support.platform import REPO, free_port

pytestmark = pytest.mark.timeout(900)

CLUSTER = REPO / "deploy" / "local" / "cluster.sh"


@dataclass(frozen=True)
class Cluster:
    env: dict[str, str]
    urls: tuple[str, str]
    key: str

    def script(self, command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(CLUSTER), command],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    http = free_port()
    env = {
        **os.environ,
        "CLUSTER_DIR": str(tmp_path_factory.mktemp("cluster")),
        "CLUSTER_HTTP_PORT": str(http),
        "CLUSTER_GRPC_PORT": str(free_port()),
        "CLUSTER_METRICS_PORT": str(free_port()),
        "CLUSTER_S3_PORT": str(free_port()),
        "CLUSTER_KAFKA_PORT": str(free_port()),
        "CLUSTER_KAFKA_CONTROLLER_PORT": str(free_port()),
        "CLUSTER_POSTGRES_PORT": str(free_port()),
        "CLUSTER_NEO4J_PORT": str(free_port()),
        # Generation is not under test here: no SmolLM2 in each inference replica.
        "CLUSTER_GENERATION_SLOTS": "0",
    }
    started = Cluster(env, (f"http://127.0.0.1:{http}", f"http://127.0.0.1:{http + 1}"), "")
    up = started.script("up")
    try:
        assert up.returncode == 0, up.stderr[-6000:]
        url, key = up.stdout.strip().splitlines()[-2:]
        assert url == started.urls[0] and key.startswith("hk_")
        yield Cluster(env, started.urls, key)
    finally:
        down = started.script("down")
        assert down.returncode == 0, down.stderr[-4000:]
        stopped = started.script("status")  # every process gone, the servers it started too
        assert stopped.returncode == 1 and "running" not in stopped.stdout, stopped.stdout


def _eventually(probe: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if probe():
            return
        assert time.monotonic() < deadline, f"nothing after {timeout} s"
        time.sleep(1)


def test_a_document_through_one_gateway_is_found_explained_and_billed_through_the_other(
    cluster: Cluster,
) -> None:
    headers = {"Authorization": f"Bearer {cluster.key}"}
    first, second = (httpx.Client(base_url=u, headers=headers, timeout=60) for u in cluster.urls)
    with first, second:
        text = "The distributed ledger keeps zqclusterword in every replica of the index."
        created = first.post("/v1/atoms", json={"content": text, "metadata": {"kind": "note"}})
        assert created.status_code == 201, created.text
        atom_id = created.json()["atom_id"]

        def found_everywhere() -> bool:
            # Round robin over two search replicas: each answer must find it.
            for mode in ("sparse", "dense", "hybrid", "sparse", "dense", "hybrid"):
                body = {"query": "zqclusterword ledger", "mode": mode, "k": 5}
                reply = second.post("/v1/search", json=body)
                assert reply.status_code == 200, reply.text
                if atom_id not in [r["document_id"] for r in reply.json()["results"]]:
                    return False
            return True

        _eventually(found_everywhere, timeout=180)

        def explained() -> bool:
            reply = second.get(f"/v1/provenance/{atom_id}/explain")
            return reply.status_code == 200 and atom_id in reply.text

        _eventually(explained, timeout=60)  # the graph in Neo4j, projected from Kafka

        def billed() -> bool:
            lines = first.get("/v1/usage").json()["lines"]
            return any(line["operation"] == "ingest" for line in lines)

        _eventually(billed, timeout=60)


def test_every_process_runs_and_status_says_so(cluster: Cluster) -> None:
    status = cluster.script("status")
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert len(lines) == 16 and all("running" in line for line in lines), status.stdout
    assert sum(line.startswith(("gateway-", "search-", "inference-")) for line in lines) == 6

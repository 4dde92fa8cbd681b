"""The distributed topology (`deploy/local/cluster.sh`): every service its own process on real
Kafka, PostgreSQL, Neo4j and S3 servers, two replicas each of the gateway, inference and search.

The gateway's e2e suite (tests/e2e/gateway/test_platform.py) runs here unchanged, against this
topology instead of `hartonomous up`. Besides: a document ingested through one gateway is
searchable through the other (both search replicas keep a full projection, so every round-robin
answer finds it), explained from the Neo4j graph and billed; the script stops everything it
started."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.gateway.support import GATEWAY_ENV, Deployment, Distributed
from tests.e2e.gateway.test_platform import *  # noqa: F403  # the same suite, on this topology
from tests.support.cluster import Cluster, eventually, running_cluster

pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # The suite's gateway settings, and SmolLM2 for its generation tests.
    settings = {**GATEWAY_ENV, "CLUSTER_GENERATION_SLOTS": "2"}
    with running_cluster(tmp_path_factory.mktemp("cluster"), settings) as running:
        yield running


@pytest.fixture(scope="module")
def platform(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Deployment:
    return Distributed(cluster, tmp_path_factory.mktemp("logs"))


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

        eventually(found_everywhere, timeout=180)

        def explained() -> bool:
            reply = second.get(f"/v1/provenance/{atom_id}/explain")
            return reply.status_code == 200 and atom_id in reply.text

        eventually(explained, timeout=60)  # the graph in Neo4j, projected from Kafka

        def billed() -> bool:
            lines = first.get("/v1/usage").json()["lines"]
            return any(line["operation"] == "ingest" for line in lines)

        eventually(billed, timeout=60)


def test_every_process_runs_and_status_says_so(cluster: Cluster) -> None:
    status = cluster.script("cluster.sh", "status")
    assert status.returncode == 0, status.stdout + status.stderr
    lines = status.stdout.splitlines()
    assert len(lines) == 16 and all("running" in line for line in lines), status.stdout
    assert sum(line.startswith(("gateway-", "search-", "inference-")) for line in lines) == 6

"""A tenant leaves with its data: 220 documents exported through `GET /v1/export` from one
platform and imported with `hartonomous import` into a fresh one, where the same queries find
the same documents; a truncated or tampered archive is refused with nothing imported."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench._search_data import stdlib_paragraphs
from tests.e2e.gateway.support import Platform, eventually, running_platform
from tests.support.platform import cli

# Two platforms, hundreds of ingests and imports: minutes, not the suite's 300 s. (The export
# bench runs 10,000; here what matters is that every document and answer comes back.)
pytestmark = pytest.mark.timeout(900)

DOCUMENTS = 220  # more than one of the export's pages of 200
INGESTERS = 4
# The ingests as fast as they go: no rate limit in the way.
UNLIMITED = {
    "HARTONOMOUS_GATEWAY_RATE_PER_SECOND": "100000",
    "HARTONOMOUS_GATEWAY_RATE_BURST": "100000",
}


@dataclass(frozen=True)
class Exported:
    archive: Path
    answers: dict[tuple[str, str], list[str]]  # (query, mode) -> document ids, best first
    metadata: dict[str, Any]  # atom id -> the metadata it was ingested with


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with running_platform(
        tmp_path_factory.mktemp("data") / "d", tmp_path_factory.mktemp("logs"), UNLIMITED
    ) as running:
        yield running


def _texts() -> list[str]:
    """Real, varied prose (standard-library docstring paragraphs): no two rank alike."""
    return stdlib_paragraphs(DOCUMENTS)


def _queries() -> list[str]:
    """Six words of every twentieth text."""
    return [" ".join(text.split()[:6]) for text in _texts()[::20]]


def _answers(http: httpx.Client) -> dict[tuple[str, str], list[str]]:
    """Dense and sparse (hybrid fuses ranks, whose ties fall by insertion order): the five best
    documents of ten, equal scores in id order (documents indexed in another order tie in
    another order)."""
    answers = {}
    for query in _queries():
        for mode in ("dense", "sparse"):
            reply = http.post("/v1/search", json={"query": query, "mode": mode, "k": 10})
            assert reply.status_code == 200, reply.text
            hits = sorted(
                reply.json()["results"], key=lambda h: (-round(h["score"], 4), h["document_id"])
            )
            answers[query, mode] = [hit["document_id"] for hit in hits[:5]]
    return answers


def _lags(http: httpx.Client) -> list[float]:
    metrics = http.get("/metrics").text.splitlines()
    return [
        float(line.split()[-1]) for line in metrics if line.startswith("hartonomous_consumer_lag{")
    ]


def _settled(http: httpx.Client) -> dict[tuple[str, str], list[str]] | None:
    """The answers once every consumer group (inference's embedding, search's index) reports
    having handled everything, and the same twice in a row 2 s apart: the index is whole. (A
    lag alone was once read as settled while the freshly imported corpus was still being
    indexed.)"""
    lags = _lags(http)
    if not lags or any(lags):
        return None
    first = _answers(http)
    time.sleep(2)
    if any(_lags(http)):
        return None
    return first if _answers(http) == first else None


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory, platform: Platform) -> Exported:
    platform.tenant("leaving")
    writer, admin = platform.key("leaving", "writer"), platform.key("leaving", "admin")
    texts = _texts()
    metadata: dict[str, Any] = {}
    with platform.client(writer) as http:

        def ingest(i: int) -> None:
            meta = {"n": i, "batch": i // 50}
            reply = http.post("/v1/atoms", json={"content": texts[i], "metadata": meta})
            assert reply.status_code == 201, reply.text
            metadata[reply.json()["atom_id"]] = meta

        with ThreadPoolExecutor(INGESTERS) as pool:
            list(pool.map(ingest, range(DOCUMENTS)))
        answers = eventually(lambda: _settled(http), timeout=600, every=2)
    archive = tmp_path_factory.mktemp("export") / "leaving.tar"
    with (
        platform.client(admin) as http,
        http.stream("GET", "/v1/export") as reply,
        archive.open("wb") as out,
    ):
        assert reply.status_code == 200
        assert reply.headers["content-type"] == "application/x-tar"
        assert "attachment" in reply.headers["content-disposition"]
        for part in reply.iter_bytes():
            out.write(part)
    return Exported(archive, answers, metadata)


def test_the_export_holds_every_document_and_its_manifest(exported: Exported) -> None:
    listed = subprocess.run(["tar", "tf", str(exported.archive)], capture_output=True, text=True)
    assert listed.returncode == 0, listed.stderr
    names = listed.stdout.splitlines()
    assert len([n for n in names if n.startswith("hartonomous-export/atoms/")]) == 2 * DOCUMENTS
    assert names[-1] == "hartonomous-export/manifest.json"
    entry = subprocess.run(
        [
            "tar",
            "xOf",
            str(exported.archive),
            f"hartonomous-export/atoms/{next(iter(exported.metadata))}.json",
        ],
        capture_output=True,
        check=True,
    )
    atom = json.loads(entry.stdout)
    assert atom["metadata"] == exported.metadata[atom["atom_id"]]
    assert atom["chunks"] and atom["mime_type"].startswith("text/")


def test_writers_cannot_export(platform: Platform, exported: Exported) -> None:
    with platform.client(platform.key("leaving", "writer")) as http:
        assert http.get("/v1/export").status_code == 403


def test_an_import_into_a_fresh_platform_answers_the_same(
    platform: Platform, exported: Exported, tmp_path: Path
) -> None:
    platform.stop()  # the new platform has the cores to itself
    with running_platform(tmp_path / "data", tmp_path / "logs", UNLIMITED) as fresh:
        tenant = fresh.tenant("arrived")
        port = ["--grpc-port", str(fresh.grpc_port)]

        whole = exported.archive.read_bytes()
        damaged = tmp_path / "damaged.tar"
        text = _texts()[3].encode()
        tampered = whole.replace(text, text[:-1] + (b"y" if text.endswith(b"x") else b"x"), 1)
        for broken in (whole[: len(whole) // 2], tampered):
            damaged.write_bytes(broken)
            refused = cli(
                "import", str(damaged), "--tenant", tenant, *port, data_dir=fresh.data_dir
            )
            assert refused.returncode == 2, refused.stderr
            assert "refused, nothing imported" in refused.stderr
        reader = fresh.key("arrived", "reader")
        with fresh.client(reader) as http:
            assert http.get("/v1/usage").json()["lines"] == []  # not one ingest

        done = cli(
            "import", str(exported.archive), "--tenant", tenant, *port, data_dir=fresh.data_dir
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.splitlines()[-1] == str(DOCUMENTS)
        with fresh.client(reader) as http:
            assert eventually(lambda: _settled(http), timeout=600, every=2) == exported.answers
            some = next(iter(exported.metadata))
            assert http.get(f"/v1/atoms/{some}").json()["metadata"] == exported.metadata[some]

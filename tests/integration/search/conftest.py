from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from importlib.metadata import metadata
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hartonomous.blobs import open_blob_store
from hartonomous.eventlog.port import Record
from hartonomous.settings import Settings
from hartonomous.v1 import search_pb2, search_pb2_grpc
from services.inference.models.minilm import MiniLM
from services.inference.service import InferenceService, WarmupPlan
from services.search.service import SearchService
from tests.support.harness import Harness, running
from tests.support.postgres import fresh_database
from tests.support.search_corpus import Doc, document, package_docs
from tests.support.search_projection import (
    A,
    B,
    Embeddings,
    SearchProjection,
    chunked,
    drain,
    embeddings_of,
    ingested,
    open_projection,
    referenced,
    store_blob,
)


@pytest.fixture(scope="session")
def corpus() -> list[Doc]:
    """Package descriptions, and one text short enough to be its own single chunk."""
    summary = document("grpcio-summary", str(metadata("grpcio")["Summary"]))
    assert [s.atom_id for s in summary.spans] == [summary.atom_id]
    return [*package_docs(), summary]


@pytest.fixture(scope="session")
def embeddings(model: MiniLM, corpus: list[Doc]) -> Embeddings:
    """Every document and chunk embedded once by the real model, as inference would."""
    texts = {doc.atom_id: doc.text for doc in corpus}
    texts |= {span.atom_id: span.text for doc in corpus for span in doc.spans}
    vectors = model.encode(list(texts.values()))
    return Embeddings(model.version, dict(zip(texts, vectors.tolist(), strict=True)))


@pytest.fixture
async def projection(pg_url: str, tmp_path: Path) -> AsyncIterator[SearchProjection]:
    async with open_projection(pg_url, tmp_path / "data") as opened:
        yield opened


@dataclass
class Platform:
    """Search and inference on one gRPC server (as `hartonomous up` runs them), on a real
    embedded log, with the corpus projected: tenant A ingested every package description,
    tenant B ingested the short text and re-ingested (a dedup hit) two of A's documents."""

    search: search_pb2_grpc.SearchStub
    docs: dict[str, Doc]
    harness: Harness

    async def query(self, tenant: str, text: str, **fields: Any) -> list[search_pb2.SearchResult]:
        request = search_pb2.SearchRequest(tenant_id=tenant, query=text, **fields)
        return list((await self.search.Search(request)).results)


SHARED = ("h11", "httpx")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def platform(
    model: MiniLM,
    corpus: list[Doc],
    embeddings: Embeddings,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Platform]:
    pg_url = await fresh_database()
    settings = Settings(data_dir=tmp_path_factory.mktemp("platform"))
    # Tests may wire another service's real servicer: only services must not import each other.
    inference = InferenceService(
        model=model, warmup=WarmupPlan(max_rows=0, cache=False), generation=None
    )
    search = SearchService()
    async with running(inference, search, pg_url=pg_url, settings=settings, consume=False) as h:
        await h.event_log.append(await _corpus_events(settings, corpus, embeddings))
        await drain(h.event_log, *(c for c in h.consumers if c.group == "search"))
        docs = {doc.name: doc for doc in corpus}
        yield Platform(search_pb2_grpc.SearchStub(h.channel), docs, h)


async def _corpus_events(
    settings: Settings, corpus: list[Doc], embeddings: Embeddings
) -> list[Record]:
    blobs = open_blob_store(settings)
    records: list[Record] = []
    for doc in corpus:
        await store_blob(blobs, doc)
        tenant = B if doc.name == "grpcio-summary" else A
        meta = {"package": doc.name, "owner": tenant}
        records += [ingested(doc, tenant, meta), chunked(doc, tenant)]
        records += embeddings_of(doc, tenant, embeddings)
    shared = [doc for doc in corpus if doc.name in SHARED]
    records += [referenced(doc, B, {"package": doc.name, "owner": B}) for doc in shared]
    return records

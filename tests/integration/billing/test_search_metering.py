"""Searches are metered atomically with their receipt: an answered search appends exactly one
SearchPerformed and one UsageRecorded it caused, a fault in that write leaves neither (and the
caller gets an error, never unbilled results), and billing counts searches against the
tenant's search quota."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import pytest

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import StoredRecord
from hartonomous.events import Event, decode_event
from hartonomous.events.payloads import SearchPerformed, to_avro
from hartonomous.postgres import create_pool
from hartonomous.runtime.grpc_server import GrpcHost, GrpcRegistration
from hartonomous.runtime.publisher import Publisher
from hartonomous.sealing import sealer_on
from hartonomous.v1 import billing_pb2, search_pb2, search_pb2_grpc
from services.search.api import SearchApi
from services.search.domain import DIM
from services.search.embedder import Embedder
from services.search.metering import SearchMeter
from services.search.queries import Searcher
from services.search.service import GRPC_SERVICE
from tests.integration.billing.conftest import USAGE_WRITE_FAULT, Billing
from tests.support.harness import CODEC
from tests.support.platform import free_port
from tests.support.search_corpus import Doc, package_docs
from tests.support.search_projection import (
    A,
    Embeddings,
    chunked,
    embeddings_of,
    ingested,
    open_projection,
    store_blob,
)

QUERY = "fast Avro records"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@dataclass
class Search:
    stub: search_pb2_grpc.SearchStub
    pg_url: str

    async def sparse(
        self, text: str = QUERY, api_key_id: str = "", **where: str
    ) -> search_pb2.SearchReply:
        request = search_pb2.SearchRequest(
            tenant_id=A,
            query=text,
            k=3,
            mode=search_pb2.SEARCH_MODE_SPARSE,
            api_key_id=api_key_id,
            filter=search_pb2.SearchFilter(metadata=where),
        )
        reply: search_pb2.SearchReply = await self.stub.Search(
            request, metadata=(("traceparent", TRACEPARENT),)
        )
        return reply


def unit_vectors(docs: list[Doc]) -> Embeddings:
    """Vectors for every document and chunk; sparse (BM25) search never compares them."""
    atom_ids = {doc.atom_id for doc in docs} | {s.atom_id for doc in docs for s in doc.spans}
    return Embeddings("0" * 64, {atom_id: [1.0] + [0.0] * (DIM - 1) for atom_id in atom_ids})


@pytest.fixture
async def search(pg_url: str, tmp_path: Path) -> AsyncIterator[Search]:
    """Tenant A's package descriptions indexed, served by SearchApi with a real meter as
    services/search/service.py wires it; inference is unreachable (sparse mode needs none)."""
    docs = package_docs(("fastavro", "portalocker"))
    async with open_projection(pg_url, tmp_path / "search") as projection:
        vectors = unit_vectors(docs)
        for doc in docs:
            await store_blob(projection.deps.blobs, doc)
            await projection.event_log.append(
                [ingested(doc, A, {}), chunked(doc, A), *embeddings_of(doc, A, vectors)]
            )
        await projection.run()
        nowhere = grpc.aio.insecure_channel(f"127.0.0.1:{free_port()}")
        searcher = Searcher(projection.store, Embedder(nowhere), projection.deps.joins)
        publisher = Publisher(projection.event_log, CODEC, "search")
        api = SearchApi(searcher, SearchMeter(publisher, projection.deps.sealer))
        host = GrpcHost("127.0.0.1", 0)
        registration = GrpcRegistration(
            api, search_pb2_grpc.add_SearchServicer_to_server, GRPC_SERVICE
        )
        port = await host.start([registration])
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                yield Search(search_pb2_grpc.SearchStub(channel), pg_url)
        finally:
            await host.stop(grace=0)
            await nowhere.close()


async def logged(log: EmbeddedEventLog, topic: str) -> list[tuple[Event, StoredRecord]]:
    return [(decode_event(CODEC, r), r) async for r in log.replay(topic, from_offset=0)]


async def test_a_search_appends_its_receipt_and_usage_together(
    search: Search, eventlog: EmbeddedEventLog
) -> None:
    reply = await search.sparse(api_key_id="key-7")
    assert reply.results, "the query should match the fastavro description"

    [(receipt, receipt_record)] = await logged(eventlog, "search")
    [(usage, _)] = await logged(eventlog, "usage")
    assert receipt.event_type == "SearchPerformed" and usage.event_type == "UsageRecorded"
    assert usage.envelope.causation_id == receipt.envelope.event_id
    assert usage.envelope.correlation_id == receipt.envelope.correlation_id
    assert receipt.envelope.traceparent == usage.envelope.traceparent == TRACEPARENT

    assert isinstance(receipt.payload, SearchPerformed)
    assert receipt.payload.query_sha256 == hashlib.sha256(QUERY.encode()).hexdigest()
    assert QUERY.encode() not in receipt_record.value  # a hash, never the text
    assert (receipt.payload.mode, receipt.payload.k) == ("sparse", 3)
    assert receipt.payload.model_version is None
    assert [(r.atom_id, r.score) for r in receipt.payload.results] == [
        (r.atom_id, r.score) for r in reply.results
    ]
    assert to_avro(usage.payload) | {"used_at": None} == {
        "tenant_id": A,
        "operation": "search",
        "unit": "requests",
        "quantity": 1,
        "resource_id": receipt.envelope.event_id,
        "used_at": None,
        "api_key_id": "key-7",
        "dimensions": {"mode": "sparse"},
    }


async def test_a_filters_values_are_kept_sealed(
    search: Search, eventlog: EmbeddedEventLog, pg_url: str
) -> None:
    await search.sparse(owner="Jane Roe")
    [(receipt, record)] = await logged(eventlog, "search")
    assert isinstance(receipt.payload, SearchPerformed)
    assert b"Jane Roe" not in record.value
    [(key, sealed)] = receipt.payload.metadata_filter.items()
    pool = await create_pool(pg_url, max_size=1)
    try:
        assert key == "owner" and await (await sealer_on(pool)).open(A, sealed) == "Jane Roe"
    finally:
        await pool.close()


async def test_a_fault_in_the_write_leaves_neither_and_returns_no_results(
    search: Search, eventlog: EmbeddedEventLog
) -> None:
    conn = await asyncpg.connect(search.pg_url)
    try:
        await conn.execute(USAGE_WRITE_FAULT)
        with pytest.raises(grpc.aio.AioRpcError) as failed:
            await search.sparse()
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        assert await logged(eventlog, "search") == []
        assert await logged(eventlog, "usage") == []

        await conn.execute("drop trigger fail_usage on log.records")
        assert (await search.sparse()).results
        assert len(await logged(eventlog, "search")) == len(await logged(eventlog, "usage")) == 1
    finally:
        await conn.close()


async def test_a_search_quota_of_n_serves_n_searches(search: Search, billing: Billing) -> None:
    await billing.stub.PutQuota(
        billing_pb2.PutQuotaRequest(tenant_id=A, operation="search", limit="3", unit="requests")
    )
    ask = billing_pb2.QuotaCheckRequest(tenant_id=A, operation="search", quantity="1")
    served = 0
    for _ in range(5):  # as the gateway does: check (reserving one request), then search
        if (await billing.stub.CheckQuota(ask)).allowed:
            await search.sparse()
            served += 1
    assert served == 3

    await billing.wait_ledger(3)
    after = await billing.stub.CheckQuota(ask)
    assert (after.allowed, after.used, after.unit) == (False, "3", "requests")

"""gRPC Search against the projected corpus: each mode finds passages from a paraphrase, the
tenant filter holds whatever the request says, filters narrow, and bad requests are refused."""

from __future__ import annotations

from typing import Any

import grpc
import pytest

from hartonomous.events.payloads import SearchPerformed, UsageRecorded
from hartonomous.v1 import search_pb2
from tests.integration.search.conftest import SHARED, Platform
from tests.support.search_projection import A, B

pytestmark = pytest.mark.asyncio(loop_scope="module")

MODES = {
    "dense": search_pb2.SEARCH_MODE_DENSE,
    "sparse": search_pb2.SEARCH_MODE_SPARSE,
    "hybrid": search_pb2.SEARCH_MODE_HYBRID,
}
# (query, package, a phrase of the passage it paraphrases)
PARAPHRASES = [
    (
        "why is the reference Avro implementation in pure Python so slow?",
        "fastavro",
        "it takes about 14 seconds to iterate through a file of 10,000 records",
    ),
    ("file locking is only cooperative on unix", "portalocker", "Unix file locks are advisory"),
]


def names(platform: Platform) -> dict[str, str]:
    return {doc.atom_id: name for name, doc in platform.docs.items()}


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(("query", "package", "passage"), PARAPHRASES)
async def test_each_mode_ranks_the_paraphrased_passage_first(
    platform: Platform, mode: str, query: str, package: str, passage: str
) -> None:
    expected = platform.docs[package].span_with(passage)
    [best, *rest] = await platform.query(A, query, mode=MODES[mode], k=5)
    assert (best.document_id, best.atom_id) == (platform.docs[package].atom_id, expected.atom_id)
    assert best.chunk_index == expected.index
    assert best.snippet == " ".join(expected.text.split())[:300]
    scores = [best.score, *(r.score for r in rest)]
    assert scores == sorted(scores, reverse=True) and len(scores) == 5


async def test_k_defaults_to_10_and_the_unspecified_mode_is_hybrid(platform: Platform) -> None:
    query = PARAPHRASES[0][0]
    default = await platform.query(A, query)
    hybrid = await platform.query(A, query, mode=search_pb2.SEARCH_MODE_HYBRID, k=10)
    assert len(default) == 10
    assert [(r.atom_id, r.score) for r in default] == [(r.atom_id, r.score) for r in hybrid]


@pytest.mark.parametrize("mode", MODES)
async def test_a_tenant_sees_only_what_it_ingested(platform: Platform, mode: str) -> None:
    # Tenant B's own short text ("HTTP/2-based RPC framework") matches this best of all, but A
    # never ingested it; B holds only that text and the two documents it re-ingested.
    query = "an RPC framework over HTTP/2"
    owner = names(platform)
    seen_by_a = {owner[r.document_id] for r in await platform.query(A, query, mode=MODES[mode])}
    seen_by_b = {
        owner[r.document_id] for r in await platform.query(B, query, mode=MODES[mode], k=100)
    }
    assert "grpcio-summary" not in seen_by_a
    assert seen_by_b == {"grpcio-summary", *SHARED}


@pytest.mark.parametrize(
    "metadata",
    [
        {"owner": A},  # A's documents say owner=acme; B's copies of them say owner=globex
        {"tenant_id": A},
        {"tenant_id": A, "owner": A},
    ],
)
async def test_a_crafted_filter_never_reaches_another_tenant(
    platform: Platform, metadata: dict[str, str]
) -> None:
    for mode in MODES.values():
        found = await platform.query(B, "HTTP", mode=mode, k=100, filter=_filter(metadata))
        assert found == []


@pytest.mark.parametrize("key", ["meta.owner", "tenant_id.x", "owner[0]", "", "a b", "x" * 65])
async def test_a_filter_key_that_is_not_a_plain_name_is_refused(
    platform: Platform, key: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await platform.query(B, "HTTP", filter=_filter({key: A}))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata key" in str(error.value.details())


async def test_a_shared_document_carries_each_tenants_own_metadata(platform: Platform) -> None:
    h11 = platform.docs["h11"].atom_id
    for tenant in (A, B):
        where = _filter({"owner": tenant, "package": "h11"})
        found = await platform.query(tenant, "HTTP/1.1 state machine", k=100, filter=where)
        assert found and {r.document_id for r in found} == {h11}


async def test_modality_and_metadata_filters_narrow_the_results(platform: Platform) -> None:
    query = "compile functions for accelerators"
    jax = await platform.query(A, query, k=100, filter=_filter({"package": "jax"}))
    assert len(jax) == len({s.atom_id for s in platform.docs["jax"].spans})
    assert {r.document_id for r in jax} == {platform.docs["jax"].atom_id}
    text = await platform.query(A, query, filter=search_pb2.SearchFilter(modality="text"))
    assert len(text) == 10
    assert await platform.query(A, query, filter=search_pb2.SearchFilter(modality="image")) == []
    nothing = _filter({"package": "jax", "owner": B})
    assert await platform.query(A, query, filter=nothing) == []


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"query": ""}, "query is empty"),
        ({"query": " \n"}, "query is empty"),
        ({"query": "x" * 4097}, "longer than 4096 bytes"),
        ({"k": -1}, "k must be in [0, 100]"),
        ({"k": 101}, "k must be in [0, 100]"),
        ({"mode": 7}, "unknown search mode 7"),
        ({"tenant_id": ""}, "tenant_id is required"),
        ({"filter": search_pb2.SearchFilter(modality="hologram")}, "unknown modality"),
    ],
)
async def test_invalid_requests_are_refused(
    platform: Platform, fields: dict[str, Any], message: str
) -> None:
    request = search_pb2.SearchRequest(**{"tenant_id": A, "query": "x", **fields})
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await platform.search.Search(request)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in str(error.value.details())


def _filter(metadata: dict[str, str]) -> search_pb2.SearchFilter:
    return search_pb2.SearchFilter(metadata=metadata)


async def test_a_dense_search_bills_its_query_tokens_with_its_receipt(platform: Platform) -> None:
    """The receipt, the request's usage and the query's embedding tokens: one write by search,
    nothing more from inference."""
    usage_before = len(await platform.harness.events("usage"))
    text = "a query asked once, to count its tokens"
    await platform.query(A, text, mode=search_pb2.SEARCH_MODE_DENSE)
    receipt = (await platform.harness.events("search"))[-1]
    assert isinstance(receipt.payload, SearchPerformed) and receipt.payload.mode == "dense"
    usage = (await platform.harness.events("usage"))[usage_before:]
    assert {u.envelope.causation_id for u in usage} == {receipt.envelope.event_id}
    assert {u.envelope.produced_by for u in usage} == {"search"}
    billed: dict[tuple[str, str], UsageRecorded] = {}
    for event in usage:
        assert isinstance(event.payload, UsageRecorded)
        billed[event.payload.operation, event.payload.unit] = event.payload
    assert sorted(billed) == [("embed", "tokens"), ("search", "requests")] and len(usage) == 2
    tokens = billed["embed", "tokens"]
    assert tokens.quantity == 12  # [CLS], ten word pieces (the comma is one), [SEP]
    assert tokens.resource_id == receipt.payload.model_version
    assert tokens.dimensions == {"device": "cpu"}

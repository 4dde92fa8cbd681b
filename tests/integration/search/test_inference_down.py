"""With the inference service unreachable, dense and hybrid queries fail cleanly with
UNAVAILABLE while sparse queries, which need no model, still answer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from hartonomous.settings import Settings
from hartonomous.v1 import search_pb2, search_pb2_grpc
from services.search.service import SearchService
from tests.support.harness import running
from tests.support.platform import free_port


@pytest.fixture
async def alone(
    pg_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[search_pb2_grpc.SearchStub]:
    """The search service by itself, its inference peer pointed at a port nobody listens on."""
    monkeypatch.setenv("HARTONOMOUS_INFERENCE_ADDR", f"127.0.0.1:{free_port()}")
    settings = Settings(data_dir=tmp_path)
    async with running(SearchService(), pg_url=pg_url, settings=settings, consume=False) as h:
        yield search_pb2_grpc.SearchStub(h.channel)


@pytest.mark.parametrize("mode", [search_pb2.SEARCH_MODE_DENSE, search_pb2.SEARCH_MODE_HYBRID])
async def test_queries_that_need_a_vector_are_unavailable(
    alone: search_pb2_grpc.SearchStub, mode: search_pb2.SearchMode
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await alone.Search(search_pb2.SearchRequest(tenant_id="acme", query="avro", mode=mode))
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "sparse mode does not need inference" in str(error.value.details())


async def test_sparse_queries_still_answer(alone: search_pb2_grpc.SearchStub) -> None:
    request = search_pb2.SearchRequest(
        tenant_id="acme", query="avro", mode=search_pb2.SEARCH_MODE_SPARSE
    )
    assert list((await alone.Search(request)).results) == []

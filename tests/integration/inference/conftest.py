from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hartonomous.blobs import BlobStore, open_blob_store
from hartonomous.settings import Settings
from hartonomous.v1 import inference_pb2_grpc
from services.inference.models.minilm import MiniLM
from services.inference.service import InferenceService, WarmupPlan
from tests.support import harness
from tests.support.harness import Started


class Running(Started[InferenceService]):
    """The inference service started by the test harness (its projection not running unless a
    test runs it), on a real blob directory."""

    @property
    def blobs(self) -> BlobStore:
        return open_blob_store(self.harness.settings)

    @property
    def stub(self) -> inference_pb2_grpc.InferenceStub:
        return inference_pb2_grpc.InferenceStub(self.harness.channel)


@pytest.fixture
async def running(model: MiniLM, pg_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    # No warm-up: shapes compile on first use, once per process for the whole suite.
    service = InferenceService(
        model=model, warmup=WarmupPlan(max_rows=0, cache=False), generation=None
    )
    settings = Settings(data_dir=tmp_path / "data")
    async with harness.running(service, pg_url=pg_url, settings=settings, consume=False) as h:
        yield Running(service, h)

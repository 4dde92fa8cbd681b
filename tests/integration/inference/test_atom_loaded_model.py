"""The platform's own models as atoms: ingest stores the bundled MiniLM and SmolLM2 in the
system tenant on its first start, and inference, given no model, loads MiniLM from its tensor
atoms: the same parameters bit for bit as the package's file, the manifest's address as its
version, and the embeddings sentence-transformers computes (the unchanged parity test)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import jax
import numpy as np
import pytest

from hartonomous.modelfiles import MINILM_NAME, SMOLLM2_NAME, SYSTEM_TENANT
from hartonomous.settings import Settings
from hartonomous.v1 import inference_pb2, inference_pb2_grpc, ingest_pb2, ingest_pb2_grpc
from services.inference.models.minilm import MiniLM
from services.inference.service import InferenceService, WarmupPlan
from services.ingest.service import IngestService
from tests.support import harness
from tests.unit.inference import test_minilm_parity as parity


@pytest.fixture
async def platform(pg_url: str, tmp_path: Path) -> AsyncIterator[harness.Harness]:
    ingest = IngestService(gc_every=None, storage_every=None, system_models=True)
    inference = InferenceService(warmup=WarmupPlan(max_rows=0, cache=False), generation=None)
    settings = Settings(data_dir=tmp_path / "data")
    async with harness.running(ingest, inference, pg_url=pg_url, settings=settings) as h:
        yield h


async def live(h: harness.Harness, name: str) -> ingest_pb2.Model:
    """The system tenant's model once ingest has stored and promoted it (the bundled models
    one by one)."""
    stub = ingest_pb2_grpc.IngestStub(h.channel)
    request = ingest_pb2.GetModelRequest(tenant_id=SYSTEM_TENANT, name=name)
    for _ in range(240):
        try:
            reply: ingest_pb2.Model = await stub.GetModel(request)
            if reply.live_version:
                return reply
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        await asyncio.sleep(0.5)
    raise AssertionError(f"{name} was not stored within 120 s")


async def test_inference_serves_minilm_loaded_from_its_atoms(
    platform: harness.Harness, model: MiniLM
) -> None:
    stub = inference_pb2_grpc.InferenceStub(platform.channel)
    # The first call waits while ingest stores the bundled models and inference loads.
    reply = await stub.Embed(
        inference_pb2.EmbedRequest(tenant_id="acme", texts=["atoms all the way down"]),
        timeout=120,
    )
    minilm = await live(platform, MINILM_NAME)
    assert reply.model_version == minilm.live.manifest_atom_id
    assert minilm.live.format == "safetensors" and minilm.live.tensors == 104
    assert (await live(platform, SMOLLM2_NAME)).live.tensors == 272

    [inference] = [s for s in platform.services if isinstance(s, InferenceService)]
    from_atoms = inference._model
    assert from_atoms is not None and from_atoms.version == reply.model_version
    same = jax.tree.map(lambda a, b: bool(np.array_equal(a, b)), from_atoms.params, model.params)
    assert all(jax.tree.leaves(same))
    expected = model.encode(["atoms all the way down"])[0]
    np.testing.assert_allclose(reply.embeddings[0].vector, expected, atol=1e-6)
    parity.test_matches_sentence_transformers(from_atoms)

"""gRPC Embed against a real in-process aio server, the real model and the embedded log."""

from __future__ import annotations

from decimal import Decimal

import grpc
import numpy as np
import pytest
from prometheus_client import REGISTRY

from hartonomous.events.payloads import UsageRecorded
from hartonomous.v1 import inference_pb2, inference_pb2_grpc
from services.inference.domain import MAX_TEXT_BYTES, MAX_TEXTS_PER_CALL, MODEL_ID
from services.inference.models.minilm import MiniLM
from tests.integration.inference.conftest import Running

TEXTS = [
    "The ledger is the source of truth.",
    "Every atom is stored once, by content address.",
    "Vectors are comparable only when the model version is equal.",
]
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture
def stub(running: Running) -> inference_pb2_grpc.InferenceStub:
    return running.stub


async def test_embed_returns_the_model_vectors_and_meters_the_tokens(
    running: Running, stub: inference_pb2_grpc.InferenceStub, model: MiniLM
) -> None:
    reply = await stub.Embed(
        inference_pb2.EmbedRequest(texts=TEXTS, tenant_id="acme"),
        metadata=(("traceparent", TRACEPARENT),),
    )

    got = np.array([e.vector for e in reply.embeddings], dtype=np.float32)
    np.testing.assert_allclose(got, model.encode(TEXTS), atol=1e-5)
    tokens = [len(ids) for ids in model.tokenize(TEXTS)]
    assert [(e.index, e.tokens) for e in reply.embeddings] == list(enumerate(tokens))
    assert reply.total_tokens == sum(tokens)
    assert (reply.model_id, reply.model_version) == (MODEL_ID, model.version)

    [usage] = await running.events("usage")
    assert usage.event_type == "UsageRecorded"
    assert usage.envelope.tenant_id == "acme"
    assert usage.envelope.traceparent == TRACEPARENT
    assert isinstance(usage.payload, UsageRecorded)
    assert usage.payload.quantity == Decimal(sum(tokens))
    assert {
        k: getattr(usage.payload, k) for k in ("tenant_id", "operation", "unit", "resource_id")
    } == {
        "tenant_id": "acme",
        "operation": "embed",
        "unit": "tokens",
        "resource_id": model.version,
    }
    # The batcher's numbers are scraped from the process registry.
    assert REGISTRY.get_sample_value("hartonomous_inference_texts_total") == len(TEXTS)
    assert REGISTRY.get_sample_value("hartonomous_inference_batch_size_sum") == len(TEXTS)
    assert REGISTRY.get_sample_value("hartonomous_inference_queue_depth") == 0
    # No warm-up here: the shapes this call needed compiled on first use.
    assert REGISTRY.get_sample_value("hartonomous_inference_compiled_shapes") >= 1
    assert REGISTRY.get_sample_value("hartonomous_inference_shapes_to_compile") == 0


async def test_the_model_may_be_named(
    running: Running, stub: inference_pb2_grpc.InferenceStub
) -> None:
    reply = await stub.Embed(
        inference_pb2.EmbedRequest(texts=["named"], tenant_id="acme", model=MODEL_ID)
    )
    assert reply.model_id == MODEL_ID and len(reply.embeddings[0].vector) == 384


@pytest.mark.parametrize(
    ("texts", "tenant", "model_name", "code", "message"),
    [
        ([], "acme", "", grpc.StatusCode.INVALID_ARGUMENT, "texts is empty"),
        (["fine", " \n\t"], "acme", "", grpc.StatusCode.INVALID_ARGUMENT, "texts[1] is empty"),
        (["fine", ""], "acme", "", grpc.StatusCode.INVALID_ARGUMENT, "texts[1] is empty"),
        (
            ["é" * (MAX_TEXT_BYTES // 2 + 1)],
            "acme",
            "",
            grpc.StatusCode.INVALID_ARGUMENT,
            f"texts[0] is {MAX_TEXT_BYTES + 2} bytes of UTF-8; at most {MAX_TEXT_BYTES}",
        ),
        (
            ["x"] * (MAX_TEXTS_PER_CALL + 1),
            "acme",
            "",
            grpc.StatusCode.INVALID_ARGUMENT,
            f"{MAX_TEXTS_PER_CALL + 1} texts in one call",
        ),
        (["fine"], "", "", grpc.StatusCode.INVALID_ARGUMENT, "tenant_id is required"),
        (["fine"], "  ", "", grpc.StatusCode.INVALID_ARGUMENT, "tenant_id is required"),
        (["fine"], "acme", "bert-base", grpc.StatusCode.NOT_FOUND, f"available: {MODEL_ID!r}"),
    ],
    ids=[
        "no-texts",
        "blank-text",
        "empty-text",
        "oversized-text",
        "too-many-texts",
        "no-tenant",
        "blank-tenant",
        "unknown-model",
    ],
)
async def test_bad_requests_get_typed_statuses_and_are_not_billed(
    running: Running,
    stub: inference_pb2_grpc.InferenceStub,
    texts: list[str],
    tenant: str,
    model_name: str,
    code: grpc.StatusCode,
    message: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Embed(
            inference_pb2.EmbedRequest(texts=texts, tenant_id=tenant, model=model_name)
        )
    assert failure.value.code() == code
    assert message in (failure.value.details() or "")
    assert await running.events("usage") == []


async def test_an_unexpected_failure_is_internal_without_a_trace(
    running: Running,
    stub: inference_pb2_grpc.InferenceStub,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def broken(records: object, within: float | None = None) -> None:
        raise RuntimeError("a bug, not an outage")

    # The usage append now fails inside the call (the log being down would be UNAVAILABLE).
    monkeypatch.setattr(running.event_log, "append", broken)
    monkeypatch.setattr(running.event_log, "append_atomic", broken)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await stub.Embed(inference_pb2.EmbedRequest(texts=["doomed"], tenant_id="acme"))
    assert failure.value.code() == grpc.StatusCode.INTERNAL
    details = failure.value.details() or ""
    assert details == "Embed failed; see the inference service log"
    assert "Traceback" not in details
    assert any(r.message == "inference: Embed failed" and r.exc_info for r in caplog.records)

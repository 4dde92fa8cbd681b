"""Generate over gRPC with SmolLM2 loaded from its tensor atoms: every generation leaves a
receipt (InferencePerformed, with its input and output atoms and its usage, in one append)
whose id is the one the caller got; Verify re-runs it from the receipt alone: identical when
intact, different when a parameter was changed; a caller that cancels frees its slot and
still gets a receipt."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from hartonomous.events.payloads import AtomIngested, InferencePerformed, UsageRecorded
from hartonomous.settings import Settings
from hartonomous.v1 import inference_pb2, inference_pb2_grpc
from services.inference.models.minilm import MiniLM
from services.inference.service import GenerationPlan, InferenceService, WarmupPlan
from services.ingest.service import IngestService
from tests.support import harness

CHAT = [inference_pb2.ChatMessage(role="user", content="Name three fruits.")]


@pytest.fixture
async def platform(model: MiniLM, pg_url: str, tmp_path: Path) -> AsyncIterator[harness.Harness]:
    ingest = IngestService(gc_every=None, storage_every=None, system_models=True)
    inference = InferenceService(
        model=model,
        warmup=WarmupPlan(max_rows=0, cache=False),
        generation=GenerationPlan(slots=2, context=256),
    )
    settings = Settings(data_dir=tmp_path / "data")
    async with harness.running(ingest, inference, pg_url=pg_url, settings=settings) as h:
        yield h


def stub(h: harness.Harness) -> inference_pb2_grpc.InferenceStub:
    return inference_pb2_grpc.InferenceStub(h.channel)


async def generate(
    h: harness.Harness, **fields: object
) -> tuple[str, inference_pb2.GenerationDone]:
    fields.setdefault("messages", CHAT)
    request = inference_pb2.GenerateRequest(tenant_id="acme", **fields)  # type: ignore[arg-type]
    generation_id, done = "", inference_pb2.GenerationDone()
    async for event in stub(h).Generate(request, timeout=300):
        if event.HasField("started"):
            generation_id = event.started.id
        elif event.HasField("done"):
            done = event.done
    return generation_id, done


async def verify(h: harness.Harness, generation_id: str) -> inference_pb2.VerifyReply:
    reply: inference_pb2.VerifyReply = await stub(h).Verify(
        inference_pb2.VerifyRequest(generation_id=generation_id), timeout=300
    )
    return reply


async def tamper(h: harness.Harness, generation_id: str, **changed: object) -> None:
    """Change a receipt's parameters where verify reads it."""
    [row] = await h.sql(
        "select receipt_json from inference.receipts where generation_id = $1", generation_id
    )
    receipt = {**json.loads(row["receipt_json"]), **changed}
    await h.sql(
        "update inference.receipts set receipt_json = $2 where generation_id = $1",
        generation_id,
        json.dumps(receipt),
    )


async def test_receipts_reproduce_and_tampering_shows(platform: harness.Harness) -> None:
    generation_id, done = await generate(
        platform, max_tokens=12, temperature=0.9, top_p=0.95, seed=5
    )
    assert done.completion_tokens >= 1 and done.text

    [performed] = [e for e in await platform.events("inference")]
    receipt = performed.payload
    assert isinstance(receipt, InferencePerformed)
    assert performed.envelope.event_id == receipt.generation_id == generation_id
    assert (receipt.seed, receipt.completion_tokens, receipt.kind) == (
        5,
        done.completion_tokens,
        "chat",
    )
    usage = [e for e in await platform.events("usage") if isinstance(e.payload, UsageRecorded)]
    generate_usage = [e for e in usage if e.payload.operation == "generate"]
    assert {e.payload.unit for e in generate_usage} == {"prompt_tokens", "completion_tokens"}
    assert all(e.envelope.causation_id == generation_id for e in generate_usage)
    atoms = [
        e.payload for e in await platform.events("atoms") if isinstance(e.payload, AtomIngested)
    ]
    assert {receipt.input_atom_id, receipt.output_atom_id} <= {a.atom_id for a in atoms}

    intact = await verify(platform, generation_id)
    assert (intact.verdict, intact.first_difference) == ("identical", -1), intact.reason
    await tamper(platform, generation_id, seed=6)
    tampered = await verify(platform, generation_id)
    assert tampered.verdict == "different" and tampered.first_difference >= 0, tampered.reason

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await verify(platform, "01a23f30-98c3-713d-889f-e14cba51a5c1")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_caller_that_cancels_frees_its_slot_and_gets_a_receipt(
    platform: harness.Harness,
) -> None:
    request = inference_pb2.GenerateRequest(
        tenant_id="acme", messages=CHAT, max_tokens=200, temperature=0
    )
    call = stub(platform).Generate(request, timeout=300)
    deltas = 0
    async for event in call:
        deltas += event.HasField("delta")
        if deltas == 3:
            break
    call.cancel()
    [inference] = [s for s in platform.services if isinstance(s, InferenceService)]
    for _ in range(100):
        receipts = await platform.events("inference")
        if receipts:
            break
        await asyncio.sleep(0.1)
    [receipt] = [e.payload for e in receipts]
    assert isinstance(receipt, InferencePerformed)
    assert receipt.finish_reason == "cancelled" and receipt.completion_tokens < 200
    served = inference.generator_now()
    assert served is not None and served.engine.load() == (0, 0)
    assert (await verify(platform, receipt.generation_id)).verdict == "identical"


async def test_bad_requests_are_refused_with_their_reason(platform: harness.Harness) -> None:
    cases = [
        (dict(max_tokens=0), grpc.StatusCode.INVALID_ARGUMENT, "max_tokens"),
        (dict(max_tokens=250), grpc.StatusCode.OUT_OF_RANGE, "context of 256 tokens"),
        (dict(max_tokens=4, model="gpt-4"), grpc.StatusCode.NOT_FOUND, "not served"),
        (
            dict(max_tokens=4, messages=[inference_pb2.ChatMessage(role="robot", content="hi")]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "unknown role",
        ),
        (
            dict(max_tokens=4, messages=[inference_pb2.ChatMessage(role="user", content=" ")]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "empty",
        ),
    ]
    for fields, code, reason in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await generate(platform, **fields)
        assert refused.value.code() == code and reason in (refused.value.details() or "")

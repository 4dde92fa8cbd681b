"""A generation's receipt in the provenance service, on a real embedded log and on each graph
engine: after a model's release, Explain of the generation id names its input, the model version
it ran (by the tenant's names, with its tensor count), the tokenizer and every parameter;
another tenant sees none of it; and the live graph equals an audit's replay of the log."""

from __future__ import annotations

import grpc
import pytest

from hartonomous.v1 import provenance_pb2 as pb
from services.provenance import audit
from services.provenance.domain import Label, node_uid
from tests.integration.provenance.conftest import Provenance
from tests.support.harness import CODEC
from tests.support.provenance_flow import (
    INPUT_MIME,
    OUTPUT_MIME,
    Generation,
    ModelHistory,
    generation,
    model_history,
)


@pytest.fixture
async def generated(provenance_on_each_graph: Provenance) -> tuple[ModelHistory, Generation]:
    """acme's tiny-llm v1 and v2 released, then a chat completion by v2, each appended in one
    write as ingest and inference append them."""
    history = model_history()
    answer = generation(history.v2, "acme", "What holds the head?", "The v2 tensors.")
    await provenance_on_each_graph.append(history.events)
    await provenance_on_each_graph.append(answer.events)
    await provenance_on_each_graph.settled()
    return history, answer


async def test_explain_names_the_input_model_version_tensors_and_parameters(
    provenance_on_each_graph: Provenance, generated: tuple[ModelHistory, Generation]
) -> None:
    history, answer = generated
    stub = provenance_on_each_graph.stub
    reply = await stub.Explain(pb.ExplainRequest(tenant_id="acme", node_id=answer.generation_id))
    gen, receipt = reply.generation, answer.receipt
    assert (gen.generation_id, gen.kind, gen.model_id) == (answer.generation_id, "chat", "tiny-llm")
    assert gen.model_version == history.v2.manifest
    assert [(n.name, n.version) for n in gen.model_names] == [("tiny-llm", "v2")]
    assert gen.tensor_count == len(history.v2.tensors) == 3
    assert gen.tokenizer_atom_id == history.v2.tokenizer
    assert (gen.input_atom_id, gen.output_atom_id) == (answer.input_atom, answer.output_atom)
    p = gen.parameters
    assert (p.temperature, p.top_p, p.top_k, p.seed, p.max_tokens, list(p.stop)) == (
        receipt.temperature,
        receipt.top_p,
        receipt.top_k,
        receipt.seed,
        receipt.max_tokens,
        receipt.stop,
    )
    assert (gen.finish_reason, gen.prompt_tokens, gen.completion_tokens) == ("stop", 12, 3)
    assert (gen.first_token_ms, gen.total_ms) == (18.5, 42.25)
    # The input and output as the tenant holds them: stored by this generation's request.
    assert [(d.atom_id, d.mime_type, d.held_as) for d in reply.documents] == [
        (answer.input_atom, INPUT_MIME, "OWNS"),
        (answer.output_atom, OUTPUT_MIME, "OWNS"),
    ]
    assert {d.source_uri for d in reply.documents} == {f"generation:{answer.generation_id}"}
    assert [s.event_type for s in reply.chain] == ["InferencePerformed"]
    for needle in (history.v2.manifest, "your tiny-llm v2", "3 tensor atoms", "seed 1099511627783"):
        assert needle in reply.text, reply.text

    by_uid = await stub.Explain(
        pb.ExplainRequest(tenant_id="acme", node_id=node_uid(Label.INFERENCE, answer.generation_id))
    )
    assert by_uid.generation == gen

    # The tensors themselves: downstream of the version, one hop.
    version = node_uid(Label.MODEL_VERSION, history.v2.manifest)
    down = await stub.Lineage(
        pb.LineageRequest(
            tenant_id="acme", node_id=version, direction=pb.DIRECTION_DOWNSTREAM, depth=1
        )
    )
    tensors = {n.properties["name"] for n in down.nodes if n.label == "Tensor"}
    assert tensors == set(history.v2.tensors)
    # Upstream of the output: the generation, and through it what it used.
    up = await stub.Lineage(
        pb.LineageRequest(
            tenant_id="acme", node_id=answer.output_atom, direction=pb.DIRECTION_UPSTREAM, depth=2
        )
    )
    roles = {e.target_id: e.properties["role"] for e in up.edges if e.type == "USED_INPUT"}
    assert roles[version] == "model" and roles[f"Atom:{answer.input_atom}"] == "input"


async def test_another_tenant_sees_nothing_and_a_replay_equals_the_graph(
    provenance_on_each_graph: Provenance, generated: tuple[ModelHistory, Generation]
) -> None:
    _, answer = generated
    stub = provenance_on_each_graph.stub
    for call, request in (
        (stub.Explain, pb.ExplainRequest(tenant_id="globex", node_id=answer.generation_id)),
        (stub.Lineage, pb.LineageRequest(tenant_id="globex", node_id=answer.generation_id)),
        (stub.Explain, pb.ExplainRequest(tenant_id="globex", node_id=answer.output_atom)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await call(request)
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

    live = await provenance_on_each_graph.service.store.fingerprint()
    assert live.nodes["Inference"] == 1 and live.edges["PRODUCED"] == 1
    report = await audit.verify(provenance_on_each_graph.event_log, CODEC, live)
    assert report.ok, report.differences

"""Models as tensor atoms in the provenance service, on a real embedded log: two versions of a
model sharing all but one tensor, each promoted in turn, answer "which of my model versions
hold these bytes?" over gRPC, lead up to their model and their promotions, and show another
tenant with some of the same bytes none of it."""

from __future__ import annotations

import grpc
import pytest

from hartonomous.v1 import provenance_pb2 as pb
from services.provenance.domain import Label, node_uid
from services.provenance.handlers import model_key
from tests.integration.provenance.conftest import Provenance
from tests.support.provenance_flow import ModelHistory, model_history


@pytest.fixture
async def history(provenance: Provenance) -> ModelHistory:
    history = model_history()
    await provenance.append(history.events)
    await provenance.settled()
    return history


def answer(reply: pb.TensorModelsReply) -> list[tuple[str, str, str, list[str]]]:
    return [(m.name, m.version, m.model_atom_id, list(m.tensor_names)) for m in reply.models]


async def test_a_tensor_atom_names_the_versions_that_hold_it(
    provenance: Provenance, history: ModelHistory
) -> None:
    v1, v2 = history.v1.manifest, history.v2.manifest
    shared = await provenance.stub.TensorModels(
        pb.TensorModelsRequest(tenant_id="acme", atom_id=history.shared)
    )
    assert shared.atom_id == history.shared
    assert answer(shared) == [
        ("tiny-llm", "v1", v1, ["embed"]),
        ("tiny-llm", "v2", v2, ["embed"]),
    ]
    changed = await provenance.stub.TensorModels(
        pb.TensorModelsRequest(tenant_id="acme", atom_id=history.changed)
    )
    assert answer(changed) == [("tiny-llm", "v2", v2, ["head"])]

    # Upstream of the bytes: the versions, the model they are versions of, their promotions.
    up = await provenance.stub.Lineage(
        pb.LineageRequest(
            tenant_id="acme", node_id=history.changed, direction=pb.DIRECTION_UPSTREAM, depth=3
        )
    )
    version = node_uid(Label.MODEL_VERSION, v2)
    model = node_uid(Label.MODEL, model_key("acme", "tiny-llm"))
    edges = {(e.type, e.source_id): e for e in up.edges}
    assert edges[("VERSION_OF", version)].target_id == model
    assert edges[("VERSION_OF", version)].properties["version"] == "v2"
    promotion = edges[("PROMOTED_BY", version)].properties
    assert (promotion["previous_version"], promotion["reason"]) == ("v1", "retrained head")
    nodes = {n.id: n for n in up.nodes}
    assert nodes[model].properties["name"] == "tiny-llm" and not nodes[model].shared
    assert nodes[version].properties["format"] == "safetensors" and nodes[version].shared


async def test_another_tenant_sees_nothing_of_a_tenants_models(
    provenance: Provenance, history: ModelHistory
) -> None:
    def asked(tenant: str, atom_id: str) -> pb.TensorModelsRequest:
        return pb.TensorModelsRequest(tenant_id=tenant, atom_id=atom_id)

    # globex holds the shared bytes in a model of its own: that one, by its own names, only.
    theirs = await provenance.stub.TensorModels(asked("globex", history.shared))
    assert answer(theirs) == [("globex-lm", "1.0", history.theirs.manifest, ["embed"])]
    up = await provenance.stub.Lineage(
        pb.LineageRequest(
            tenant_id="globex", node_id=history.shared, direction=pb.DIRECTION_UPSTREAM, depth=3
        )
    )
    seen = {n.id for n in up.nodes}
    assert node_uid(Label.MODEL, model_key("globex", "globex-lm")) in seen
    assert node_uid(Label.MODEL_VERSION, history.v1.manifest) not in seen
    assert "tiny-llm" not in str(up)

    acme_model = node_uid(Label.MODEL, model_key("acme", "tiny-llm"))
    for call, request in (
        (provenance.stub.TensorModels, asked("globex", history.changed)),
        (provenance.stub.Lineage, pb.LineageRequest(tenant_id="globex", node_id=acme_model)),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await call(request)
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND

    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await provenance.stub.TensorModels(asked("acme", "not-an-atom-id"))
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT

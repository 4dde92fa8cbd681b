"""GET /v1/provenance/{id}: where a node came from and what came of it; .../explain: why the
platform has an atom or embedding, or how a generation was made; /tensors/{atom}/models: which
of the caller's model versions hold a tensor's bytes. The provenance service walks only the
caller's own nodes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from pydantic import BaseModel, Field

from hartonomous.v1 import provenance_pb2
from services.gateway.clients import EXPLAIN, LINEAGE, TENSOR_MODELS
from services.gateway.deps import GatewayDep, Reader
from services.gateway.problems import documented
from services.gateway.routes.atoms import AtomId

router = APIRouter(prefix="/v1/provenance", tags=["provenance"])

DIRECTIONS = {
    "upstream": provenance_pb2.DIRECTION_UPSTREAM,
    "downstream": provenance_pb2.DIRECTION_DOWNSTREAM,
}
NodeId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=512,
        description="An atom id (64 hex characters), a generation id (the id a completion"
        ' returned) or a node id such as "Embedding:<atom>/<model>"',
    ),
]


class GraphNode(BaseModel):
    id: str
    label: str
    key: str
    properties: dict[str, Any]
    source: dict[str, Any] = Field(
        default_factory=dict, description="topic, partition, offset and event id it came from"
    )
    shared: bool = Field(
        description="Content or model nodes visible to every tenant that holds them"
    )


class GraphEdge(BaseModel):
    type: str
    source_id: str
    target_id: str
    properties: dict[str, Any]
    source: dict[str, Any] = Field(default_factory=dict)


class Lineage(BaseModel):
    root_id: str
    nodes: list[GraphNode]
    edges: list[GraphEdge]
    truncated: bool = Field(description="True when the walk hit the node limit")


class Explanation(BaseModel):
    atom_id: str = Field(description="The explained atom; empty for a generation")
    documents: list[dict[str, Any]] = Field(
        description="Which documents, where in them, when; a generation's input and output"
    )
    embeddings: list[dict[str, Any]] = Field(description="Which model version embedded it")
    chain: list[dict[str, Any]] = Field(description="The events that led here, newest first")
    text: str = Field(description="The same, as prose")
    generation: dict[str, Any] | None = Field(
        default=None,
        description="A generation's receipt: the model version it ran (its tensor count, your"
        " names for it), the tokenizer atom, the sampling parameters, token counts and timings",
    )


class TensorModel(BaseModel):
    name: str = Field(description="The model's name")
    version: str = Field(description="The version's label")
    model_atom_id: str = Field(description="The version's manifest atom: its identity")
    tensor_names: list[str] = Field(description="The version's tensors whose bytes the atom is")


class TensorModels(BaseModel):
    atom_id: str
    models: list[TensorModel] = Field(description="By name, then version")


def _dict(message: Message, *, zeros: bool = False) -> dict[str, Any]:
    """`zeros`: fields at their zero value too (a temperature of 0 is a parameter, not absent)."""
    return MessageToDict(
        message, preserving_proto_field_name=True, always_print_fields_with_no_presence=zeros
    )


@router.get(
    "/{node_id}",
    summary="Lineage of a node",
    responses=documented(400, 401, 404, 422, 429, 503, 504),
)
async def lineage(
    node_id: NodeId,
    gw: GatewayDep,
    principal: Reader,
    direction: Annotated[Literal["upstream", "downstream"], Query()] = "upstream",
    depth: Annotated[int, Query(ge=1, le=10)] = 3,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> Lineage:
    request = provenance_pb2.LineageRequest(
        tenant_id=principal.tenant_id,
        node_id=node_id,
        direction=DIRECTIONS[direction],
        depth=depth,
        limit=limit,
    )
    reply: provenance_pb2.LineageReply = await gw.peers.unary(LINEAGE, request)
    return Lineage(
        root_id=reply.root_id,
        nodes=[
            GraphNode(
                id=n.id,
                label=n.label,
                key=n.key,
                properties=_dict(n.properties),
                source=_dict(n.source),
                shared=n.shared,
            )
            for n in reply.nodes
        ],
        edges=[
            GraphEdge(
                type=e.type,
                source_id=e.source_id,
                target_id=e.target_id,
                properties=_dict(e.properties),
                source=_dict(e.source),
            )
            for e in reply.edges
        ],
        truncated=reply.truncated,
    )


@router.get(
    "/{node_id}/explain",
    summary="Why the platform has this atom or embedding, or how a generation was made",
    responses=documented(400, 401, 404, 422, 429, 503, 504),
)
async def explain(node_id: NodeId, gw: GatewayDep, principal: Reader) -> Explanation:
    request = provenance_pb2.ExplainRequest(tenant_id=principal.tenant_id, node_id=node_id)
    reply: provenance_pb2.ExplainReply = await gw.peers.unary(EXPLAIN, request)
    return Explanation(
        atom_id=reply.atom_id,
        documents=[_dict(d) for d in reply.documents],
        embeddings=[_dict(e) for e in reply.embeddings],
        chain=[_dict(c) for c in reply.chain],
        text=reply.text,
        generation=_dict(reply.generation, zeros=True) if reply.HasField("generation") else None,
    )


@router.get(
    "/tensors/{atom_id}/models",
    summary="Which of your model versions hold this tensor atom",
    responses=documented(400, 401, 404, 422, 429, 503, 504),
)
async def tensor_models(atom_id: AtomId, gw: GatewayDep, principal: Reader) -> TensorModels:
    request = provenance_pb2.TensorModelsRequest(tenant_id=principal.tenant_id, atom_id=atom_id)
    reply: provenance_pb2.TensorModelsReply = await gw.peers.unary(TENSOR_MODELS, request)
    return TensorModels(
        atom_id=reply.atom_id,
        models=[
            TensorModel(
                name=m.name,
                version=m.version,
                model_atom_id=m.model_atom_id,
                tensor_names=list(m.tensor_names),
            )
            for m in reply.models
        ],
    )

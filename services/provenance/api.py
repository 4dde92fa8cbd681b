"""The hartonomous.v1.Provenance gRPC servicer: translates messages and errors, nothing more.

The tenant comes from the request's tenant_id, which the gateway sets from the caller's API
key; queries.py confines every read to what that tenant may see."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any, TypeAlias

import grpc
from google.protobuf.struct_pb2 import Struct

from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.sealing import ERASED, SealedValueError, Sealer, is_sealed
from hartonomous.v1 import provenance_pb2 as pb
from services.provenance import queries
from services.provenance.canonical import Fingerprint
from services.provenance.domain import (
    Direction,
    Edge,
    InvalidRequest,
    Node,
    NotFound,
    Origin,
    Value,
    shows_origin,
)
from services.provenance.explain import Document, Embedding, Explanation, Generation, render
from services.provenance.graph.port import GraphStore, GraphStoreError

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

# An unreachable graph is UNAVAILABLE; its driver's details stay in the log.
_ERRORS = GrpcErrors(
    "provenance",
    {
        InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
        NotFound: grpc.StatusCode.NOT_FOUND,
        GraphStoreError: grpc.StatusCode.UNAVAILABLE,
        SealedValueError: grpc.StatusCode.DATA_LOSS,
    },
    withheld={GraphStoreError: "the provenance graph is unavailable"},
)

DIRECTIONS = {
    pb.DIRECTION_UNSPECIFIED: Direction.UPSTREAM,
    pb.DIRECTION_UPSTREAM: Direction.UPSTREAM,
    pb.DIRECTION_DOWNSTREAM: Direction.DOWNSTREAM,
}


class ProvenanceApi:
    def __init__(self, store: GraphStore, sealer: Sealer) -> None:
        self._store = store
        self._sealer = sealer

    async def Lineage(self, request: pb.LineageRequest, context: Context) -> pb.LineageReply:
        async with _ERRORS.scope(context, "Lineage"):
            direction = DIRECTIONS.get(request.direction)
            if direction is None:
                raise InvalidRequest(f"unknown direction {request.direction}")
            found = await queries.lineage(
                self._store,
                request.tenant_id,
                request.node_id,
                direction,
                request.depth,
                request.limit,
            )
            tenant = request.tenant_id
            return pb.LineageReply(
                root_id=found.root.uid,
                nodes=[_node(n, tenant) for n in found.nodes],
                edges=[_edge(await self._opened(e), tenant) for e in found.edges],
                truncated=found.truncated,
            )

    async def Explain(self, request: pb.ExplainRequest, context: Context) -> pb.ExplainReply:
        async with _ERRORS.scope(context, "Explain"):
            found = await queries.explain(self._store, request.tenant_id, request.node_id)
            documents = [
                dataclasses.replace(d, holding=await self._opened(d.holding))
                for d in found.documents
            ]
            return _explanation(dataclasses.replace(found, documents=documents))

    async def _opened(self, edge: Edge) -> Edge:
        """The graph keeps a tenant's free-form fields sealed, as the log does; they open here,
        for the tenant whose edge it is ("[erased]" once its key is destroyed)."""
        if not any(isinstance(v, str) and is_sealed(v) for v in edge.props.values()):
            return edge
        props: dict[str, Value] = {}
        for name, value in edge.props.items():
            if isinstance(value, str) and is_sealed(value):
                opened = await self._sealer.open(edge.tenant_id, value)
                value = ERASED if opened is None else opened
            props[name] = value
        return dataclasses.replace(edge, props=props)

    async def TensorModels(
        self, request: pb.TensorModelsRequest, context: Context
    ) -> pb.TensorModelsReply:
        async with _ERRORS.scope(context, "TensorModels"):
            found = await queries.tensor_models(self._store, request.tenant_id, request.atom_id)
            return pb.TensorModelsReply(
                atom_id=request.atom_id,
                models=[
                    pb.TensorModel(
                        name=m.name,
                        version=m.version,
                        model_atom_id=m.model_atom_id,
                        tensor_names=m.tensor_names,
                    )
                    for m in found
                ],
            )

    async def Fingerprint(
        self, request: pb.FingerprintRequest, context: Context
    ) -> pb.FingerprintReply:
        async with _ERRORS.scope(context, "Fingerprint"):
            return fingerprint_reply(await self._store.fingerprint(list(request.topics) or None))


def _struct(values: Mapping[str, Any]) -> Struct:
    out = Struct()
    out.update(dict(values))
    return out


def _source(origin: Origin) -> pb.Source:
    source = pb.Source(
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
        event_id=origin.event_id,
    )
    source.occurred_at.FromDatetime(datetime.fromisoformat(origin.occurred_at))
    return source


def _node(node: Node, tenant: str) -> pb.GraphNode:
    out = pb.GraphNode(
        id=node.uid,
        label=node.label.value,
        key=node.key,
        properties=_struct(node.props),
        shared=not node.tenant_id,
    )
    if node.tenant_id == tenant or shows_origin(node, tenant):
        out.source.CopyFrom(_source(node.origin))
    return out


def _edge(edge: Edge, tenant: str) -> pb.GraphEdge:
    out = pb.GraphEdge(
        type=edge.type.value,
        source_id=edge.source,
        target_id=edge.target,
        properties=_struct(edge.props),
    )
    if edge.tenant_id == tenant or shows_origin(edge, tenant):
        out.source.CopyFrom(_source(edge.origin))
    return out


def _int(value: Value) -> int:
    """An integer property (a property may be a list of strings; these never are)."""
    if isinstance(value, list):
        raise TypeError(f"expected an integer property, got the list {value!r}")
    return int(value)


def _document(doc: Document) -> pb.ExplainedDocument:
    held = doc.holding
    out = pb.ExplainedDocument(
        atom_id=doc.atom_id,
        source_uri=str(held.props.get("source_uri", "")),
        metadata_json=str(held.props.get("metadata_json", "{}")),
        held_as=held.type.value,
        request_id=str(held.props.get("request_id", "")),
        event_id=held.origin.event_id,
    )
    out.held_since.FromDatetime(datetime.fromisoformat(held.origin.occurred_at))
    if doc.atom is not None:
        p = doc.atom.props
        out.modality = str(p.get("modality", ""))
        out.mime_type = str(p.get("mime_type", ""))
        out.size_bytes = _int(p.get("size_bytes", 0))
    if doc.chunk is not None:
        c = doc.chunk.props
        out.chunk.CopyFrom(
            pb.ChunkPosition(
                index=_int(c["index"]),
                start_char=_int(c["start_char"]),
                end_char=_int(c["end_char"]),
                start_byte=_int(c["start_byte"]),
                end_byte=_int(c["end_byte"]),
                chunker=str(c["chunker"]),
            )
        )
    return out


def _embedding(emb: Embedding) -> pb.ExplainedEmbedding:
    p = emb.node.props
    out = pb.ExplainedEmbedding(
        id=emb.node.uid,
        model_id=str(p["model_id"]),
        model_version=str(p["model_version"]),
        dim=_int(p["dim"]),
    )
    if emb.event is not None:
        out.computed.CopyFrom(_source(emb.event.origin))
        out.correlation_id = str(emb.event.props.get("correlation_id", ""))
        out.causation_id = str(emb.event.props.get("causation_id", ""))
    return out


def _step(event: Node) -> pb.CausalStep:
    p = event.props
    out = pb.CausalStep(
        event_type=str(p.get("event_type", "")),
        correlation_id=str(p.get("correlation_id", "")),
        causation_id=str(p.get("causation_id", "")),
        produced_by=str(p.get("produced_by", "")),
    )
    if event.defines:  # an event only named by its effects has no record of its own yet
        out.source.CopyFrom(_source(event.origin))
    return out


def _float(value: Value) -> float:
    if isinstance(value, list):
        raise TypeError(f"expected a number property, got the list {value!r}")
    return float(value)


def _strings(value: Value) -> list[str]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list property, got {value!r}")
    return value


def _generation(gen: Generation) -> pb.ExplainedGeneration:
    p = gen.node.props
    return pb.ExplainedGeneration(
        generation_id=gen.node.key,
        kind=str(p["kind"]),
        model_id=str(p["model_id"]),
        model_version=str(p["model_version"]),
        model_names=[pb.ModelName(name=name, version=label) for name, label in gen.names],
        tensor_count=gen.tensors,
        tokenizer_atom_id=str(p["tokenizer_atom_id"]),
        input_atom_id=str(p.get("input_atom_id", "")),
        input_sha256=str(p["input_sha256"]),
        output_atom_id=str(p["output_atom_id"]),
        parameters=pb.SamplingParameters(
            temperature=_float(p["temperature"]),
            top_p=_float(p["top_p"]),
            top_k=_int(p["top_k"]),
            seed=_int(p["seed"]),
            max_tokens=_int(p["max_tokens"]),
            stop=_strings(p["stop"]),
        ),
        finish_reason=str(p["finish_reason"]),
        prompt_tokens=_int(p["prompt_tokens"]),
        completion_tokens=_int(p["completion_tokens"]),
        first_token_ms=_float(p["first_token_ms"]),
        total_ms=_float(p["total_ms"]),
    )


def _explanation(found: Explanation) -> pb.ExplainReply:
    reply = pb.ExplainReply(
        atom_id=found.atom_id,
        documents=[_document(d) for d in found.documents],
        embeddings=[_embedding(e) for e in found.embeddings],
        chain=[_step(e) for e in found.chain],
        text=render(found),
    )
    if found.generation is not None:
        reply.generation.CopyFrom(_generation(found.generation))
    return reply


def fingerprint_reply(fp: Fingerprint) -> pb.FingerprintReply:
    return pb.FingerprintReply(
        nodes=fp.nodes,
        edges=fp.edges,
        digest=fp.digest,
        positions=[
            pb.AppliedPosition(topic=topic, partition=part, next_offset=offset)
            for (topic, part), offset in sorted(fp.positions.items())
        ],
    )


def fingerprint_from(reply: pb.FingerprintReply) -> Fingerprint:
    return Fingerprint(
        dict(reply.nodes),
        dict(reply.edges),
        reply.digest,
        {(p.topic, p.partition): p.next_offset for p in reply.positions},
    )

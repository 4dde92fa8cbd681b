"""The hartonomous.v1.Ingest gRPC servicer: translates messages and errors, nothing more."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, TypeAlias

import grpc

from hartonomous.blobs import BlobNotFoundError
from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.runtime.grpc_server import metadata_value
from hartonomous.tenants import parse_tenant_id
from hartonomous.v1 import ingest_pb2
from services.ingest import handlers
from services.ingest.domain import errors, header
from services.ingest.domain.results import AtomView, IngestResult

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

# A catalogued atom whose bytes are gone is DATA_LOSS; the details stay in the log.
_ERRORS = GrpcErrors(
    "ingest",
    {
        errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        errors.ContentTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
        errors.AtomNotFound: grpc.StatusCode.NOT_FOUND,
        BlobNotFoundError: grpc.StatusCode.DATA_LOSS,
    },
    withheld={BlobNotFoundError: "the atom's bytes are lost"},
)


class IngestApi:
    def __init__(self, deps: handlers.Deps) -> None:
        self._deps = deps

    async def IngestAtom(
        self, requests: AsyncIterator[ingest_pb2.IngestRequest], context: Context
    ) -> ingest_pb2.IngestReply:
        async with _ERRORS.scope(context, "IngestAtom"):
            header = await _header(requests, context)
            return _reply(await handlers.ingest_atom(self._deps, header, _data(requests)))

    async def GetAtom(
        self, request: ingest_pb2.GetAtomRequest, context: Context
    ) -> ingest_pb2.Atom:
        async with _ERRORS.scope(context, "GetAtom"):
            tenant_id, atom_id = _target(request)
            view = await self._deps.catalog.visible(tenant_id, atom_id)
            if view is None:
                raise errors.AtomNotFound(tenant_id, atom_id)
            return _atom(view)

    async def ReadAtom(
        self, request: ingest_pb2.ReadAtomRequest, context: Context
    ) -> AsyncIterator[ingest_pb2.AtomData]:
        async with _ERRORS.scope(context, "ReadAtom"):
            tenant_id, atom_id = _target(request)
            if not await self._deps.catalog.holds(tenant_id, atom_id):
                raise errors.AtomNotFound(tenant_id, atom_id)
            async for data in self._deps.blobs.read(atom_id):
                yield ingest_pb2.AtomData(data=data)


async def _header(
    requests: AsyncIterator[ingest_pb2.IngestRequest], context: Context
) -> header.IngestHeader:
    first = await anext(requests, None)
    if first is None or first.WhichOneof("part") != "header":
        raise errors.InvalidArgument("the first message must carry the header")
    h = first.header
    return header.parse_header(
        tenant_id=h.tenant_id,
        mime_type=h.mime_type,
        modality=h.modality,
        metadata_json=h.metadata_json,
        source_uri=h.source_uri,
        expected_sha256=h.expected_sha256,
        traceparent=h.traceparent or metadata_value(context, "traceparent") or "",
        request_id=h.request_id,
        api_key_id=h.api_key_id,
    )


async def _data(requests: AsyncIterator[ingest_pb2.IngestRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("part") == "header":
            raise errors.InvalidArgument("only the first message may carry a header")
        yield request.data


def _target(request: ingest_pb2.GetAtomRequest | ingest_pb2.ReadAtomRequest) -> tuple[str, str]:
    return parse_tenant_id(request.tenant_id), header.parse_atom_id(request.atom_id)


def _reply(result: IngestResult) -> ingest_pb2.IngestReply:
    return ingest_pb2.IngestReply(
        atom_id=result.atom_id,
        deduplicated=result.deduplicated,
        modality=result.modality,
        mime_type=result.mime_type,
        size_bytes=result.size_bytes,
        chunk_count=len(result.chunk_atom_ids),
        chunk_atom_ids=result.chunk_atom_ids,
        request_id=result.request_id,
    )


def _atom(view: AtomView) -> ingest_pb2.Atom:
    atom = ingest_pb2.Atom(
        atom_id=view.atom_id,
        modality=view.modality,
        mime_type=view.mime_type,
        size_bytes=view.size_bytes,
        metadata_json=view.metadata_json,
        source_uri=view.source_uri or "",
        chunker=view.chunker or "",
        chunks=[
            ingest_pb2.Chunk(
                index=c.index,
                atom_id=c.atom_id,
                start_char=c.span.start_char,
                end_char=c.span.end_char,
                start_byte=c.span.start_byte,
                end_byte=c.span.end_byte,
            )
            for c in view.chunks
        ],
    )
    atom.created_at.FromDatetime(view.created_at)
    return atom

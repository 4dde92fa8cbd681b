"""The hartonomous.v1.Ingest gRPC servicer: translates messages and errors, nothing more."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeAlias

import grpc

from hartonomous.blobs import BlobNotFoundError
from hartonomous.v1 import ingest_pb2
from services.ingest import domain, handlers
from services.ingest.domain import AtomView, IngestResult

log = logging.getLogger(__name__)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

_STATUS = {
    domain.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    domain.ContentTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
    domain.AtomNotFound: grpc.StatusCode.NOT_FOUND,
}


class IngestApi:
    def __init__(self, deps: handlers.Deps) -> None:
        self._deps = deps

    async def IngestAtom(
        self, requests: AsyncIterator[ingest_pb2.IngestRequest], context: Context
    ) -> ingest_pb2.IngestReply:
        async with _Statuses(context, "IngestAtom"):
            header = await _header(requests, context)
            return _reply(await handlers.ingest_atom(self._deps, header, _data(requests)))

    async def GetAtom(
        self, request: ingest_pb2.GetAtomRequest, context: Context
    ) -> ingest_pb2.Atom:
        async with _Statuses(context, "GetAtom"):
            tenant_id, atom_id = _target(request)
            view = await self._deps.catalog.visible(tenant_id, atom_id)
            if view is None:
                raise domain.AtomNotFound(tenant_id, atom_id)
            return _atom(view)

    async def ReadAtom(
        self, request: ingest_pb2.ReadAtomRequest, context: Context
    ) -> AsyncIterator[ingest_pb2.AtomData]:
        async with _Statuses(context, "ReadAtom"):
            tenant_id, atom_id = _target(request)
            if not await self._deps.catalog.holds(tenant_id, atom_id):
                raise domain.AtomNotFound(tenant_id, atom_id)
            async for data in self._deps.blobs.read(atom_id):
                yield ingest_pb2.AtomData(data=data)


class _Statuses:
    """Errors -> gRPC statuses: the caller's mistakes by type, a catalogued atom without bytes
    as DATA_LOSS, anything else as INTERNAL (the trace goes to the log, never to the client)."""

    def __init__(self, context: Context, method: str) -> None:
        self._context = context
        self._method = method

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, domain.IngestError):
            await self._context.abort(_STATUS[type(exc)], str(exc))
        if isinstance(exc, BlobNotFoundError):
            log.error("a catalogued atom has no blob: %s", exc)
            await self._context.abort(grpc.StatusCode.DATA_LOSS, "the atom's bytes are lost")
        if isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
            log.error("%s failed", self._method, exc_info=exc)
            await self._context.abort(
                grpc.StatusCode.INTERNAL, f"{self._method} failed; see the ingest service log"
            )


async def _header(
    requests: AsyncIterator[ingest_pb2.IngestRequest], context: Context
) -> domain.IngestHeader:
    first = await anext(requests, None)
    if first is None or first.WhichOneof("part") != "header":
        raise domain.InvalidArgument("the first message must carry the header")
    h = first.header
    return domain.parse_header(
        tenant_id=h.tenant_id,
        mime_type=h.mime_type,
        modality=h.modality,
        metadata_json=h.metadata_json,
        source_uri=h.source_uri,
        expected_sha256=h.expected_sha256,
        traceparent=h.traceparent or _metadata(context, "traceparent"),
        request_id=h.request_id,
        api_key_id=h.api_key_id,
    )


async def _data(requests: AsyncIterator[ingest_pb2.IngestRequest]) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("part") == "header":
            raise domain.InvalidArgument("only the first message may carry a header")
        yield request.data


def _metadata(context: Context, key: str) -> str:
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return str(value)
    return ""


def _target(request: ingest_pb2.GetAtomRequest | ingest_pb2.ReadAtomRequest) -> tuple[str, str]:
    return domain.parse_tenant_id(request.tenant_id), domain.parse_atom_id(request.atom_id)


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

"""The hartonomous.v1.Ingest gRPC servicer: translates messages and errors, nothing more."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from datetime import UTC
from typing import Any, TypeAlias

import grpc

from hartonomous.blobs import BlobNotFoundError
from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.runtime.grpc_server import metadata_value
from hartonomous.tenants import parse_tenant_id
from hartonomous.v1 import ingest_pb2
from services.ingest import handlers, model_files, model_history, models, release
from services.ingest.domain import errors, header
from services.ingest.domain.models.version import parse_model_header
from services.ingest.domain.results import (
    AtomView,
    IngestResult,
    ModelVersionView,
    ModelView,
    TensorPair,
)

Context: TypeAlias = grpc.aio.ServicerContext[Any, Any]

# A catalogued atom whose bytes are gone is DATA_LOSS; the details stay in the log.
_ERRORS = GrpcErrors(
    "ingest",
    {
        errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
        errors.ContentTooLarge: grpc.StatusCode.RESOURCE_EXHAUSTED,
        errors.AtomNotFound: grpc.StatusCode.NOT_FOUND,
        errors.ModelVersionNotFound: grpc.StatusCode.NOT_FOUND,
        errors.ModelNotFound: grpc.StatusCode.NOT_FOUND,
        errors.ModelFileDamaged: grpc.StatusCode.DATA_LOSS,
        errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
        errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
        BlobNotFoundError: grpc.StatusCode.DATA_LOSS,
    },
    withheld={BlobNotFoundError: "the atom's bytes are lost"},
)


DRAIN_LIMIT = 16 << 20
"""Bytes of a refused upload read to the end so that its client hears why (larger: cut off)."""

DEFAULT_PAGE = 200
MAX_PAGE = 1000


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
            return _atom(await self._opened(tenant_id, view))

    async def ReadAtom(
        self, request: ingest_pb2.ReadAtomRequest, context: Context
    ) -> AsyncIterator[ingest_pb2.AtomData]:
        async with _ERRORS.scope(context, "ReadAtom"):
            tenant_id, atom_id = _target(request)
            if not await self._deps.catalog.holds(tenant_id, atom_id):
                raise errors.AtomNotFound(tenant_id, atom_id)
            async for data in self._deps.blobs.read(atom_id):
                yield ingest_pb2.AtomData(data=data)

    async def ListAtoms(
        self, request: ingest_pb2.ListAtomsRequest, context: Context
    ) -> ingest_pb2.AtomPage:
        async with _ERRORS.scope(context, "ListAtoms"):
            tenant_id = parse_tenant_id(request.tenant_id)
            limit = request.limit or DEFAULT_PAGE
            if not 1 <= limit <= MAX_PAGE:
                raise errors.InvalidArgument(f"limit must be 1 to {MAX_PAGE}, got {limit}")
            views = await self._deps.catalog.documents(tenant_id, request.after_atom_id, limit)
            last = views[-1].atom_id if len(views) == limit else ""
            atoms = [_atom(await self._opened(tenant_id, v)) for v in views]
            return ingest_pb2.AtomPage(atoms=atoms, next_after=last)

    async def ReleaseAtom(
        self, request: ingest_pb2.ReleaseAtomRequest, context: Context
    ) -> ingest_pb2.ReleaseAtomReply:
        async with _ERRORS.scope(context, "ReleaseAtom"):
            tenant_id, atom_id = _target(request)
            if not request.actor:
                raise errors.InvalidArgument("actor is required: who deletes the atom")
            released = await release.release(
                self._deps,
                release.ReleaseRequest(
                    tenant_id=tenant_id,
                    atom_id=atom_id,
                    actor=request.actor,
                    reason=request.reason.strip() or None,
                    traceparent=request.traceparent or metadata_value(context, "traceparent"),
                    request_id=request.request_id or None,
                ),
            )
            return ingest_pb2.ReleaseAtomReply(
                request_id=released.request_id, blobs_removed=released.blobs_removed
            )

    async def EraseTenant(
        self, request: ingest_pb2.EraseTenantRequest, context: Context
    ) -> ingest_pb2.EraseTenantReply:
        async with _ERRORS.scope(context, "EraseTenant"):
            tenant_id = parse_tenant_id(request.tenant_id)
            if not request.actor:
                raise errors.InvalidArgument("actor is required: who erases the tenant")
            erased = await release.erase(
                self._deps,
                release.EraseRequest(
                    tenant_id=tenant_id,
                    actor=request.actor,
                    traceparent=request.traceparent or metadata_value(context, "traceparent"),
                    request_id=request.request_id or None,
                ),
            )
            return ingest_pb2.EraseTenantReply(
                request_id=erased.request_id,
                documents_released=erased.documents_released,
                blobs_removed=erased.blobs_removed,
            )

    async def _opened(self, tenant_id: str, view: AtomView) -> AtomView:
        """The catalog keeps what the events carry: the tenant's fields sealed. An erased
        tenant's fields open to nothing."""
        sealer = self._deps.sealer
        metadata = await sealer.open(tenant_id, view.metadata_json)
        source = await sealer.open_optional(tenant_id, view.source_uri)
        return dataclasses.replace(view, metadata_json=metadata or "{}", source_uri=source)

    async def IngestModel(
        self, requests: AsyncIterator[ingest_pb2.IngestModelRequest], context: Context
    ) -> ingest_pb2.ModelVersion:
        async with _ERRORS.scope(context, "IngestModel"):
            h = await _first_header(requests)
            fields = _request_fields(h, context)
            try:
                model_header = parse_model_header(
                    name=h.name,
                    version=h.version,
                    files=dict(h.files),
                    tenant_id=fields["tenant_id"],
                    source_uri=fields["source_uri"],
                    traceparent=fields["traceparent"],
                    request_id=fields["request_id"],
                    api_key_id=fields["api_key_id"],
                )
            except errors.IngestError:
                await _drain(requests, DRAIN_LIMIT)
                raise
            view = await models.ingest_model(self._deps, model_header, _data(requests))
            return _model_version(view)

    async def GetModelVersion(
        self, request: ingest_pb2.GetModelVersionRequest, context: Context
    ) -> ingest_pb2.ModelVersion:
        async with _ERRORS.scope(context, "GetModelVersion"):
            tenant_id = parse_tenant_id(request.tenant_id)
            view = await self._deps.catalog.model_version(tenant_id, request.name, request.version)
            if view is None:
                raise errors.ModelVersionNotFound(tenant_id, request.name, request.version)
            return _model_version(view)

    async def PromoteModelVersion(
        self, request: ingest_pb2.PromoteModelVersionRequest, context: Context
    ) -> ingest_pb2.Model:
        async with _ERRORS.scope(context, "PromoteModelVersion"):
            promotion = model_history.PromoteRequest(
                tenant_id=parse_tenant_id(request.tenant_id),
                name=request.name,
                version=request.version,
                reason=request.reason.strip() or None,
                traceparent=request.traceparent or metadata_value(context, "traceparent"),
                request_id=request.request_id or None,
            )
            return _model(await model_history.promote(self._deps, promotion))

    async def GetModel(
        self, request: ingest_pb2.GetModelRequest, context: Context
    ) -> ingest_pb2.Model:
        async with _ERRORS.scope(context, "GetModel"):
            as_of = request.as_of.ToDatetime(UTC) if request.HasField("as_of") else None
            view = await model_history.model_as_of(
                self._deps.catalog,
                self._deps.blobs,
                parse_tenant_id(request.tenant_id),
                request.name,
                as_of,
            )
            return _model(view)

    async def ReadModelFile(
        self, request: ingest_pb2.GetModelVersionRequest, context: Context
    ) -> AsyncIterator[ingest_pb2.AtomData]:
        async with _ERRORS.scope(context, "ReadModelFile"):
            tenant_id = parse_tenant_id(request.tenant_id)
            found = await model_history.version_of(
                self._deps.catalog, tenant_id, request.name, request.version
            )
            async for data in model_files.read_file(self._deps.blobs, found.manifest_atom_id):
                yield ingest_pb2.AtomData(data=data)

    async def DiffModelVersions(
        self, request: ingest_pb2.DiffModelVersionsRequest, context: Context
    ) -> ingest_pb2.ModelDiff:
        async with _ERRORS.scope(context, "DiffModelVersions"):
            pairs = await model_history.diff(
                self._deps.catalog,
                parse_tenant_id(request.tenant_id),
                request.name,
                request.from_version,
                request.to_version,
            )
            return _diff(request, pairs)


async def _header(
    requests: AsyncIterator[ingest_pb2.IngestRequest], context: Context
) -> header.IngestHeader:
    h = await _first_header(requests)
    return header.parse_header(
        mime_type=h.mime_type,
        modality=h.modality,
        metadata_json=h.metadata_json,
        expected_sha256=h.expected_sha256,
        **_request_fields(h, context),
    )


def _request_fields(h: Any, context: Context) -> dict[str, str]:
    """What every upload's header says about the request: tenant, source, trace, ids."""
    return {
        "tenant_id": h.tenant_id,
        "source_uri": h.source_uri,
        "traceparent": h.traceparent or metadata_value(context, "traceparent") or "",
        "request_id": h.request_id,
        "api_key_id": h.api_key_id,
    }


async def _first_header(requests: AsyncIterator[Any]) -> Any:
    """The header the first message must carry (an IngestHeader or a ModelHeader)."""
    first = await anext(requests, None)
    if first is None or first.WhichOneof("part") != "header":
        raise errors.InvalidArgument("the first message must carry the header")
    return first.header


async def _data(
    requests: AsyncIterator[ingest_pb2.IngestRequest]
    | AsyncIterator[ingest_pb2.IngestModelRequest],
) -> AsyncIterator[bytes]:
    async for request in requests:
        if request.WhichOneof("part") == "header":
            raise errors.InvalidArgument("only the first message may carry a header")
        yield request.data


async def _drain(requests: AsyncIterator[Any], limit: int) -> None:
    """Read what the client still sends (up to `limit` bytes) before refusing its header: a
    gRPC client still writing when the call ends may see a transport error (INTERNAL), not
    the reason."""
    read = 0
    async for request in requests:
        read += request.ByteSize()
        if read > limit:
            return


def _target(
    request: ingest_pb2.GetAtomRequest | ingest_pb2.ReadAtomRequest | ingest_pb2.ReleaseAtomRequest,
) -> tuple[str, str]:
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


def _model_version(view: ModelVersionView) -> ingest_pb2.ModelVersion:
    reply = ingest_pb2.ModelVersion(
        name=view.name,
        version=view.version,
        manifest_atom_id=view.manifest_atom_id,
        format=view.format,
        architecture=view.architecture or "",
        source_sha256=view.source_sha256,
        size_bytes=view.size_bytes,
        tensors=view.tensors,
        new_tensors=view.new_tensors,
        new_bytes=view.new_bytes,
        shared_with=[
            ingest_pb2.SharedTensors(
                name=s.name, version=s.version, tensors=s.tensors, bytes=s.bytes
            )
            for s in view.shared_with
        ],
        request_id=view.request_id,
    )
    reply.ingested_at.FromDatetime(view.ingested_at)
    return reply


def _model(view: ModelView) -> ingest_pb2.Model:
    reply = ingest_pb2.Model(
        name=view.name,
        live_version=view.live.version if view.live is not None else "",
        manifest_json=view.manifest_json,
        versions=[_model_version(v) for v in view.versions],
        promotions=[
            ingest_pb2.Promotion(
                version=p.version,
                manifest_atom_id=p.manifest_atom_id,
                previous_version=p.previous_version or "",
                reason=p.reason or "",
            )
            for p in view.promotions
        ],
    )
    if view.live is not None:
        reply.live.CopyFrom(_model_version(view.live))
    reply.as_of.FromDatetime(view.as_of)
    for message, promotion in zip(reply.promotions, view.promotions, strict=True):
        message.promoted_at.FromDatetime(promotion.promoted_at)
    return reply


def _diff(
    request: ingest_pb2.DiffModelVersionsRequest, pairs: Sequence[TensorPair]
) -> ingest_pb2.ModelDiff:
    """Each tensor name lands in one list: only in `to` (added), only in `from` (removed), in
    both with different atoms (changed), or in both alike (counted)."""
    reply = ingest_pb2.ModelDiff(
        name=request.name, from_version=request.from_version, to_version=request.to_version
    )
    for p in pairs:
        if p.from_atom_id == p.to_atom_id:
            reply.unchanged_tensors += 1
            reply.unchanged_bytes += p.to_bytes or 0
            continue
        change = ingest_pb2.TensorChange(
            tensor=p.tensor,
            from_atom_id=p.from_atom_id or "",
            to_atom_id=p.to_atom_id or "",
            from_bytes=p.from_bytes or 0,
            to_bytes=p.to_bytes or 0,
        )
        side = (
            reply.added
            if p.from_atom_id is None
            else reply.removed
            if p.to_atom_id is None
            else reply.changed
        )
        side.append(change)
    return reply

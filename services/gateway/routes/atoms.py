"""/v1/atoms: ingest content (a streamed multipart upload, or JSON text), list the documents,
read a catalog entry, stream the bytes back with their mime type, and delete a document."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar, get_args

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from hartonomous.v1 import ingest_pb2
from services.gateway import quota, timestamps
from services.gateway.auth import Principal
from services.gateway.clients import GET_ATOM, INGEST_ATOM, LIST_ATOMS, READ_ATOM, RELEASE_ATOM
from services.gateway.deps import GatewayDep, Reader, Writer
from services.gateway.problems import ProblemError, documented
from services.gateway.uploads import (
    FILE_FIELD,
    SECOND_ATOM_HEADER,
    atom_messages,
    open_upload,
    single,
)

router = APIRouter(prefix="/v1/atoms", tags=["atoms"])

_Model = TypeVar("_Model", bound=BaseModel)

FORM_FIELDS = frozenset({"modality", "metadata"})
# What a client sends when it does not know the type: let ingest detect it from the bytes.
UNKNOWN_MIME = ("", "application/octet-stream")

Modality = Literal["text", "image", "audio", "video", "model", "tensor", "binary"]
MODALITIES = list(get_args(Modality))
AtomId = Annotated[
    str, Path(pattern="^[0-9a-f]{64}$", description="SHA-256 hex of the bytes: the content address")
]


class AtomCreate(BaseModel):
    """Text content as JSON. Files and binary content: upload as multipart/form-data."""

    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, description="The text to ingest")
    modality: Modality | None = Field(None, description="Detected from the bytes when unset")
    mime_type: str | None = Field(None, description="e.g. text/markdown; detected when unset")
    metadata: dict[str, Any] = Field(
        default_factory=dict, description="Your fields (at most 16 KiB of JSON); search filters"
    )
    source_uri: str | None = Field(None, description="Where it came from; '.md' marks markdown")


class AtomCreated(BaseModel):
    atom_id: str = Field(description="SHA-256 hex of the bytes")
    deduplicated: bool = Field(description="The bytes were stored already: only referenced")
    chunks: int = Field(description="Text chunks it was split into (0: not text)")
    modality: str
    mime_type: str
    size_bytes: int
    request_id: str = Field(description="Correlation id of the events this ingest appended")


class Chunk(BaseModel):
    index: int
    atom_id: str
    start_char: int
    end_char: int
    start_byte: int
    end_byte: int


class Atom(BaseModel):
    atom_id: str
    modality: str
    mime_type: str
    size_bytes: int
    metadata: dict[str, Any]
    source_uri: str | None
    created_at: datetime | None
    chunker: str | None
    chunks: list[Chunk]


_UPLOAD_SCHEMA = {
    "type": "object",
    "required": [FILE_FIELD],
    "properties": {
        "modality": {"type": "string", "enum": MODALITIES},
        "metadata": {"type": "string", "description": "A JSON object, as text"},
        FILE_FIELD: {"type": "string", "format": "binary", "description": "Last field"},
    },
}
_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {"schema": _UPLOAD_SCHEMA},
            "application/json": {"schema": AtomCreate.model_json_schema()},
        },
    }
}


@router.post(
    "",
    status_code=201,
    summary="Ingest content",
    description="A multipart upload (streamed to ingest as it arrives; `modality` and "
    "`metadata` fields before the `file` part) or JSON text. Same bytes, same atom.",
    responses=documented(401, 403, 413, 415, 422, 429, 503, 504),
    openapi_extra=_REQUEST_BODY,
)
async def create_atom(
    request: Request, response: Response, gw: GatewayDep, principal: Writer
) -> AtomCreated:
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        await quota.admit(gw, principal, "ingest", response, declared_length(request))
        upload = await open_upload(content_type, request.stream())
        unknown = set(upload.fields) - FORM_FIELDS
        if unknown:
            raise ProblemError(
                422, f"unknown form fields {sorted(unknown)}", kind="invalid-request"
            )
        header = _header(
            principal,
            modality=upload.fields.get("modality", ""),
            metadata_json=upload.fields.get("metadata", ""),
            mime_type=upload.content_type,
            source_uri=upload.filename,
        )
        data = upload.data
    elif content_type.split(";")[0].strip() == "application/json":
        body = _parse(AtomCreate, await request.body())
        content = body.content.encode()
        await quota.admit(gw, principal, "ingest", response, len(content))
        header = _header(
            principal,
            modality=body.modality or "",
            metadata_json=json.dumps(body.metadata),
            mime_type=body.mime_type or "",
            source_uri=body.source_uri or "",
        )
        data = single(content)
    else:
        raise ProblemError(415, "send application/json or multipart/form-data")
    reply: ingest_pb2.IngestReply = await gw.peers.upload(
        INGEST_ATOM, atom_messages(header, data), poison=SECOND_ATOM_HEADER
    )
    response.headers["Location"] = f"/v1/atoms/{reply.atom_id}"
    return AtomCreated(
        atom_id=reply.atom_id,
        deduplicated=reply.deduplicated,
        chunks=reply.chunk_count,
        modality=reply.modality,
        mime_type=reply.mime_type,
        size_bytes=reply.size_bytes,
        request_id=reply.request_id,
    )


class AtomPage(BaseModel):
    atoms: list[Atom]
    next_after: str | None = Field(description="Pass as `after` for the next page; null: the last")


@router.get(
    "",
    summary="Your documents, a page at a time, by atom id",
    responses=documented(401, 403, 422, 429, 503, 504),
)
async def list_atoms(
    gw: GatewayDep,
    principal: Reader,
    after: Annotated[str, Query(pattern="^([0-9a-f]{64})?$", description="next_after")] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AtomPage:
    request = ingest_pb2.ListAtomsRequest(
        tenant_id=principal.tenant_id, after_atom_id=after, limit=limit
    )
    page: ingest_pb2.AtomPage = await gw.peers.unary(LIST_ATOMS, request)
    return AtomPage(atoms=[_entry(a) for a in page.atoms], next_after=page.next_after or None)


@router.get(
    "/{atom_id}",
    summary="An atom's catalog entry",
    responses=documented(401, 403, 404, 422, 429, 503, 504),
)
async def get_atom(atom_id: AtomId, gw: GatewayDep, principal: Reader) -> Atom:
    return _entry(await _atom(gw, principal, atom_id))


def _entry(atom: ingest_pb2.Atom) -> Atom:
    return Atom(
        atom_id=atom.atom_id,
        modality=atom.modality,
        mime_type=atom.mime_type,
        size_bytes=atom.size_bytes,
        metadata=json.loads(atom.metadata_json or "{}"),
        source_uri=atom.source_uri or None,
        created_at=timestamps.from_proto(atom, "created_at"),
        chunker=atom.chunker or None,
        chunks=[
            Chunk(
                index=c.index,
                atom_id=c.atom_id,
                start_char=c.start_char,
                end_char=c.end_char,
                start_byte=c.start_byte,
                end_byte=c.end_byte,
            )
            for c in atom.chunks
        ],
    )


@router.get(
    "/{atom_id}/content",
    summary="An atom's bytes, streamed, with its mime type",
    response_class=Response,
    responses={
        200: {
            # Any schema: the bytes are whatever was ingested, in its own type (a JSON atom is
            # a JSON document here, not a string).
            "description": "The bytes, with the atom's mime type",
            "content": {"*/*": {"schema": {}}},
        },
        **documented(401, 403, 404, 422, 429, 503, 504),
    },
)
async def read_content(atom_id: AtomId, gw: GatewayDep, principal: Reader) -> Response:
    # The catalog first: a 404 is still possible, and it gives the type and length.
    atom = await _atom(gw, principal, atom_id)
    request = ingest_pb2.ReadAtomRequest(tenant_id=principal.tenant_id, atom_id=atom_id)

    async def body() -> AsyncIterator[bytes]:
        async for message in gw.peers.stream(READ_ATOM, request):
            yield message.data

    return StreamingResponse(
        body(),
        media_type=atom.mime_type or "application/octet-stream",
        headers={"Content-Length": str(atom.size_bytes)},
    )


@router.delete(
    "/{atom_id}",
    status_code=204,
    summary="Delete a document",
    description="Ends this tenant's reference to the atom: it leaves the catalog, every search "
    "mode and storage metering at once, for good (a rebuild or replay of the log keeps it "
    "deleted); the log keeps who deleted it, when and why. The bytes are removed once no tenant "
    "references them. Deleting again is a 404 (the tenant holds it no more); a chunk of a held "
    "text or a part of a model version is a 409.",
    response_class=Response,
    responses=documented(401, 403, 404, 409, 422, 429, 503, 504),
)
async def delete_atom(
    atom_id: AtomId,
    gw: GatewayDep,
    principal: Writer,
    reason: Annotated[str | None, Query(max_length=1024, description="Why, for the log")] = None,
) -> Response:
    request = ingest_pb2.ReleaseAtomRequest(
        tenant_id=principal.tenant_id,
        atom_id=atom_id,
        actor=f"key:{principal.key_id}",
        reason=reason or "",
    )
    await gw.peers.unary(RELEASE_ATOM, request)
    return Response(status_code=204)


async def _atom(gw: GatewayDep, principal: Principal, atom_id: str) -> ingest_pb2.Atom:
    request = ingest_pb2.GetAtomRequest(tenant_id=principal.tenant_id, atom_id=atom_id)
    atom: ingest_pb2.Atom = await gw.peers.unary(GET_ATOM, request)
    return atom


def _header(principal: Principal, **fields: str) -> ingest_pb2.IngestHeader:
    if fields["mime_type"] in UNKNOWN_MIME:
        fields["mime_type"] = ""
    return ingest_pb2.IngestHeader(
        tenant_id=principal.tenant_id, api_key_id=principal.key_id, **fields
    )


def declared_length(request: Request) -> int:
    try:
        return max(0, int(request.headers.get("content-length", "0")))
    except ValueError:
        return 0


def _parse(model: type[_Model], raw: bytes) -> _Model:
    """Validate a body read by hand as FastAPI would have: errors are a 422 problem."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]
        ) from None

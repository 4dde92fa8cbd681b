"""/v1/models: models as content-addressed tensor atoms. Ingest a safetensors or GGUF file as a
version of a named model (streamed), read a version, its byte-exact file, what changed between
two versions, and which version was live at any moment; promote (or roll back)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from hartonomous.v1 import ingest_pb2
from services.gateway import quota, timestamps
from services.gateway.auth import Principal
from services.gateway.clients import (
    DIFF_MODEL_VERSIONS,
    GET_MODEL,
    GET_MODEL_VERSION,
    INGEST_MODEL,
    PROMOTE_MODEL_VERSION,
    READ_MODEL_FILE,
)
from services.gateway.deps import Admin, GatewayDep, Reader
from services.gateway.problems import ProblemError, documented
from services.gateway.routes.atoms import declared_length
from services.gateway.uploads import FILE_FIELD, message_pieces, open_upload

router = APIRouter(prefix="/v1/models", tags=["models"])

FORM_FIELDS = frozenset({"name", "version", "files"})
# Ingest rejects a second header: how an aborted upload tells it to store nothing.
SECOND_HEADER = ingest_pb2.IngestModelRequest(header=ingest_pb2.ModelHeader())
NAME_PATTERN = "^[A-Za-z0-9._-]{1,128}$"
VERSION_PATTERN = "^[A-Za-z0-9._-]{1,64}$"
Name = Annotated[str, Path(pattern=NAME_PATTERN, description="The model's name")]
Version = Annotated[str, Path(pattern=VERSION_PATTERN, description="The version's label")]


class SharedTensors(BaseModel):
    name: str
    version: str
    tensors: int
    bytes: int


class ModelVersion(BaseModel):
    name: str
    version: str
    manifest_atom_id: str = Field(description="The manifest atom's address: the identity")
    format: str = Field(description="safetensors or gguf")
    architecture: str | None
    source_sha256: str = Field(description="SHA-256 of the file as uploaded")
    size_bytes: int
    tensors: int
    new_tensors: int = Field(description="Tensors no version held before this one")
    new_bytes: int = Field(description="Their bytes: what this version added to storage")
    shared_with: list[SharedTensors] = Field(
        description="Other versions holding some of the same tensor atoms"
    )
    ingested_at: datetime | None
    request_id: str


class Promotion(BaseModel):
    version: str
    manifest_atom_id: str
    promoted_at: datetime | None
    previous_version: str | None
    reason: str | None


class Model(BaseModel):
    name: str
    as_of: datetime | None = Field(description="The moment answered for")
    live_version: str | None = Field(description="The version live then; null: none yet")
    live: ModelVersion | None
    manifest: dict[str, Any] | None = Field(
        description="The live version's manifest: its tensors and their atoms, parts, files"
    )
    versions: list[ModelVersion] = Field(description="Versions ingested by then, oldest first")
    promotions: list[Promotion] = Field(description="Promotions up to then, oldest first")


class PromotionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=1024, description="Recorded on the event")


class TensorChange(BaseModel):
    tensor: str
    from_atom_id: str | None
    to_atom_id: str | None
    from_bytes: int | None
    to_bytes: int | None


class ModelDiff(BaseModel):
    name: str
    from_version: str
    to_version: str
    added: list[TensorChange]
    removed: list[TensorChange]
    changed: list[TensorChange]
    unchanged_tensors: int
    unchanged_bytes: int


_UPLOAD = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["name", "version", FILE_FIELD],
                    "properties": {
                        "name": {"type": "string", "pattern": NAME_PATTERN},
                        "version": {"type": "string", "pattern": VERSION_PATTERN},
                        "files": {
                            "type": "string",
                            "description": "Companion files, a JSON object: path -> atom id "
                            '(ingest each with POST /v1/atoms first), e.g. {"tokenizer.json": '
                            '"<atom id>"}',
                        },
                        FILE_FIELD: {
                            "type": "string",
                            "format": "binary",
                            "description": "The safetensors or GGUF file; last field",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    "",
    status_code=201,
    summary="Ingest a model file as a version",
    description="A multipart upload streamed to ingest as it arrives: `name`, `version` and "
    "optional `files` before the `file` part. Every tensor becomes a tensor atom (one held "
    "already is only referenced); the manifest atom's address is the version's identity.",
    responses=documented(401, 403, 409, 413, 415, 422, 429, 503, 504),
    openapi_extra=_UPLOAD,
)
async def ingest_model(
    request: Request, response: Response, gw: GatewayDep, principal: Admin
) -> ModelVersion:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise ProblemError(415, "send the model file as multipart/form-data")
    await quota.admit(gw, principal, "ingest", response, declared_length(request))
    upload = await open_upload(content_type, request.stream())
    unknown = set(upload.fields) - FORM_FIELDS
    if unknown:
        raise ProblemError(422, f"unknown form fields {sorted(unknown)}", kind="invalid-request")
    header = ingest_pb2.ModelHeader(
        tenant_id=principal.tenant_id,
        api_key_id=principal.key_id,
        name=upload.fields.get("name", ""),
        version=upload.fields.get("version", ""),
        source_uri=upload.filename,
        files=_files(upload.fields.get("files", "")),
    )
    reply = await gw.peers.upload(
        INGEST_MODEL, _messages(header, upload.data), poison=SECOND_HEADER
    )
    response.headers["Location"] = f"/v1/models/{reply.name}/versions/{reply.version}"
    return _version(reply)


@router.get(
    "/{name}",
    summary="A model: its versions, promotions and the live version, now or as of a moment",
    responses=documented(401, 403, 404, 422, 429, 503, 504),
)
async def get_model(
    name: Name,
    gw: GatewayDep,
    principal: Reader,
    as_of: Annotated[datetime | None, Query(description="ISO 8601 moment; unset: now")] = None,
) -> Model:
    request = ingest_pb2.GetModelRequest(tenant_id=principal.tenant_id, name=name)
    moment = timestamps.to_proto(as_of)
    if moment is not None:
        request.as_of.CopyFrom(moment)
    return _model(await gw.peers.unary(GET_MODEL, request))


@router.get(
    "/{name}/versions/{version}",
    summary="A version: its identity, what it added to storage and what it shares",
    responses=documented(401, 403, 404, 422, 429, 503, 504),
)
async def get_version(
    name: Name, version: Version, gw: GatewayDep, principal: Reader
) -> ModelVersion:
    return _version(await _get_version(gw, principal, name, version))


@router.get(
    "/{name}/versions/{version}/file",
    summary="The version's file, rebuilt from its atoms byte for byte",
    response_class=Response,
    responses={
        200: {
            "description": "The file as it was ingested (same SHA-256)",
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
        },
        **documented(401, 403, 404, 422, 429, 503, 504),
    },
)
async def read_file(name: Name, version: Version, gw: GatewayDep, principal: Reader) -> Response:
    # The catalog first: a 404 is still possible, and it gives the length and the hash.
    found = await _get_version(gw, principal, name, version)
    request = ingest_pb2.GetModelVersionRequest(
        tenant_id=principal.tenant_id, name=name, version=version
    )

    async def body() -> AsyncIterator[bytes]:
        async for message in gw.peers.stream(READ_MODEL_FILE, request):
            yield message.data

    filename = f"{name}-{version}.{found.format}"
    return StreamingResponse(
        body(),
        media_type="application/octet-stream",
        headers={
            "Content-Length": str(found.size_bytes),
            "Content-Disposition": f'attachment; filename="{filename}"',
            "X-Content-SHA256": found.source_sha256,
        },
    )


@router.post(
    "/{name}/versions/{version}/promote",
    summary="Make a version the live one from now on (a rollback promotes an earlier one)",
    responses=documented(401, 403, 404, 422, 429, 503, 504),
)
async def promote(
    name: Name,
    version: Version,
    gw: GatewayDep,
    principal: Admin,
    body: Annotated[PromotionRequest | None, Body()] = None,
) -> Model:
    request = ingest_pb2.PromoteModelVersionRequest(
        tenant_id=principal.tenant_id,
        name=name,
        version=version,
        reason=body.reason or "" if body is not None else "",
        api_key_id=principal.key_id,
    )
    return _model(await gw.peers.unary(PROMOTE_MODEL_VERSION, request))


@router.get(
    "/{name}/diff",
    summary="What changed between two versions, tensor by tensor",
    responses=documented(401, 403, 404, 422, 429, 503, 504),
)
async def diff(
    name: Name,
    gw: GatewayDep,
    principal: Reader,
    from_version: Annotated[str, Query(alias="from", pattern=VERSION_PATTERN)],
    to_version: Annotated[str, Query(alias="to", pattern=VERSION_PATTERN)],
) -> ModelDiff:
    request = ingest_pb2.DiffModelVersionsRequest(
        tenant_id=principal.tenant_id, name=name, from_version=from_version, to_version=to_version
    )
    reply: ingest_pb2.ModelDiff = await gw.peers.unary(DIFF_MODEL_VERSIONS, request)
    return ModelDiff(
        name=reply.name,
        from_version=reply.from_version,
        to_version=reply.to_version,
        added=[_change(c) for c in reply.added],
        removed=[_change(c) for c in reply.removed],
        changed=[_change(c) for c in reply.changed],
        unchanged_tensors=reply.unchanged_tensors,
        unchanged_bytes=reply.unchanged_bytes,
    )


async def _get_version(
    gw: GatewayDep, principal: Principal, name: str, version: str
) -> ingest_pb2.ModelVersion:
    request = ingest_pb2.GetModelVersionRequest(
        tenant_id=principal.tenant_id, name=name, version=version
    )
    reply: ingest_pb2.ModelVersion = await gw.peers.unary(GET_MODEL_VERSION, request)
    return reply


def _files(raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        files = json.loads(raw)
    except ValueError:
        files = None
    if not isinstance(files, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in files.items()
    ):
        raise ProblemError(
            422,
            'files must be a JSON object of path -> atom id, e.g. {"tokenizer.json": "<id>"}',
            kind="invalid-request",
        )
    return files


async def _messages(
    header: ingest_pb2.ModelHeader, data: AsyncIterator[bytes]
) -> AsyncIterator[ingest_pb2.IngestModelRequest]:
    yield ingest_pb2.IngestModelRequest(header=header)
    async for piece in message_pieces(data):
        yield ingest_pb2.IngestModelRequest(data=piece)


def _version(v: ingest_pb2.ModelVersion) -> ModelVersion:
    return ModelVersion(
        name=v.name,
        version=v.version,
        manifest_atom_id=v.manifest_atom_id,
        format=v.format,
        architecture=v.architecture or None,
        source_sha256=v.source_sha256,
        size_bytes=v.size_bytes,
        tensors=v.tensors,
        new_tensors=v.new_tensors,
        new_bytes=v.new_bytes,
        shared_with=[
            SharedTensors(name=s.name, version=s.version, tensors=s.tensors, bytes=s.bytes)
            for s in v.shared_with
        ],
        ingested_at=timestamps.from_proto(v, "ingested_at"),
        request_id=v.request_id,
    )


def _model(m: ingest_pb2.Model) -> Model:
    live = m.live_version or None
    return Model(
        name=m.name,
        as_of=timestamps.from_proto(m, "as_of"),
        live_version=live,
        live=_version(m.live) if live else None,
        manifest=json.loads(m.manifest_json) if live else None,
        versions=[_version(v) for v in m.versions],
        promotions=[
            Promotion(
                version=p.version,
                manifest_atom_id=p.manifest_atom_id,
                promoted_at=timestamps.from_proto(p, "promoted_at"),
                previous_version=p.previous_version or None,
                reason=p.reason or None,
            )
            for p in m.promotions
        ],
    )


def _change(c: ingest_pb2.TensorChange) -> TensorChange:
    return TensorChange(
        tensor=c.tensor,
        from_atom_id=c.from_atom_id or None,
        to_atom_id=c.to_atom_id or None,
        from_bytes=c.from_bytes if c.from_atom_id else None,
        to_bytes=c.to_bytes if c.to_atom_id else None,
    )

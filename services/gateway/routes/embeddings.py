"""POST /v1/embeddings, shaped like OpenAI's embeddings API so its clients work unchanged
(point `base_url` at <gateway>/v1 and use a Hartonomous key as the API key)."""

from __future__ import annotations

import base64
import struct
from collections.abc import Sequence
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from hartonomous.v1 import inference_pb2
from services.gateway import quota
from services.gateway.clients import EMBED
from services.gateway.deps import GatewayDep, Writer
from services.gateway.problems import documented

router = APIRouter(prefix="/v1", tags=["embeddings"])

# The models inference serves, by their OpenAI-style short name and their full name.
MODEL_ALIASES = {"all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2"}
ModelName = Literal["all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"]
Text = Annotated[str, Field(min_length=1, max_length=32 * 1024)]


class EmbeddingRequest(BaseModel):
    # OpenAI clients send fields we do not use (e.g. `user`): accepted and ignored.
    model_config = ConfigDict(extra="ignore")

    input: Text | Annotated[list[Text], Field(min_length=1, max_length=2048)] = Field(
        description="A text, or a list of texts (token arrays are not accepted)"
    )
    model: ModelName
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="base64: little-endian float32 bytes, as OpenAI sends them"
    )


class EmbeddingData(BaseModel):
    object: Literal["embedding"] = "embedding"
    index: int
    embedding: list[float] | str


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"] = "list"
    data: list[EmbeddingData]
    model: str
    usage: EmbeddingUsage


@router.post(
    "/embeddings",
    summary="Embed texts (OpenAI-compatible)",
    responses=documented(401, 403, 404, 413, 422, 429, 503, 504),
)
async def create_embeddings(
    body: EmbeddingRequest, response: Response, gw: GatewayDep, principal: Writer
) -> EmbeddingList:
    await quota.admit(gw, principal, "embed", response)
    texts = [body.input] if isinstance(body.input, str) else body.input
    request = inference_pb2.EmbedRequest(
        texts=texts,
        tenant_id=principal.tenant_id,
        model=MODEL_ALIASES.get(body.model, body.model),
    )
    reply: inference_pb2.EmbedResponse = await gw.peers.unary(EMBED, request)
    return EmbeddingList(
        data=[
            EmbeddingData(index=e.index, embedding=_encoded(e.vector, body.encoding_format))
            for e in reply.embeddings
        ],
        model=reply.model_id,
        usage=EmbeddingUsage(prompt_tokens=reply.total_tokens, total_tokens=reply.total_tokens),
    )


def _encoded(vector: Sequence[float], encoding: str) -> list[float] | str:
    if encoding == "float":
        return list(vector)
    return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

"""POST /v1/search: the caller's own atoms only (search adds the tenant filter itself)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from hartonomous.v1 import search_pb2
from services.gateway import quota
from services.gateway.clients import SEARCH
from services.gateway.deps import GatewayDep, Reader
from services.gateway.problems import documented

router = APIRouter(prefix="/v1", tags=["search"])

MODES = {
    "dense": search_pb2.SEARCH_MODE_DENSE,
    "sparse": search_pb2.SEARCH_MODE_SPARSE,
    "hybrid": search_pb2.SEARCH_MODE_HYBRID,
}


class SearchFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    modality: Annotated[str | None, Field(description="Only atoms of this modality, e.g. text")] = (
        None
    )
    metadata: Annotated[
        dict[str, str | int | float | bool],
        Field(
            max_length=16,
            description="Only atoms whose ingest metadata has each key equal to the value",
        ),
    ] = {}


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1, max_length=4096, description="Words or a question")
    k: int = Field(10, ge=1, le=100, description="How many results")
    mode: Literal["dense", "sparse", "hybrid"] = Field(
        "hybrid",
        description="dense: meaning (embeddings); sparse: exact words (BM25); hybrid: both",
    )
    filter: SearchFilter = Field(default_factory=SearchFilter)


class SearchResult(BaseModel):
    atom_id: str = Field(description="The matching chunk")
    document_id: str = Field(description="The atom the chunk belongs to")
    score: float = Field(description="Higher is better; comparable within one reply only")
    snippet: str
    chunk_index: int


class SearchReply(BaseModel):
    results: list[SearchResult]


@router.post(
    "/search",
    summary="Search your atoms",
    responses=documented(401, 403, 413, 422, 429, 503, 504),
)
async def search(
    body: SearchRequest, response: Response, gw: GatewayDep, principal: Reader
) -> SearchReply:
    # Each search is billed one request: reserving it keeps a burst within the quota.
    await quota.admit(gw, principal, "search", response, 1)
    request = search_pb2.SearchRequest(
        tenant_id=principal.tenant_id,
        api_key_id=principal.key_id,
        query=body.query,
        k=body.k,
        mode=MODES[body.mode],
        filter=search_pb2.SearchFilter(
            modality=body.filter.modality or "",
            metadata={k: _spelling(v) for k, v in body.filter.metadata.items()},
        ),
    )
    reply: search_pb2.SearchReply = await gw.peers.unary(SEARCH, request)
    return SearchReply(
        results=[
            SearchResult(
                atom_id=r.atom_id,
                document_id=r.document_id,
                score=r.score,
                snippet=r.snippet,
                chunk_index=r.chunk_index,
            )
            for r in reply.results
        ]
    )


def _spelling(value: str | int | float | bool) -> str:
    """Numbers and booleans compare in their JSON spelling (search.proto)."""
    return value if isinstance(value, str) else json.dumps(value)

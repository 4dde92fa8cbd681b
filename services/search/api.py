"""The hartonomous.v1.Search gRPC servicer: translates messages, nothing more.

The tenant comes from the request's tenant_id, which the gateway sets from the caller's API
key; the user's filter can only narrow within it (domain.Filter). A search is answered only once
the meter has appended its receipt and usage, its query's embedding tokens included
(metering.py)."""

from __future__ import annotations

from typing import Any

import grpc

from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.runtime.grpc_server import metadata_value
from hartonomous.telemetry import span
from hartonomous.v1 import search_pb2
from services.search import domain
from services.search.domain import Mode
from services.search.embedder import EmbedderUnavailable
from services.search.metering import NotRecorded, SearchMeter
from services.search.queries import Searcher

_ERRORS = GrpcErrors(
    "search",
    {
        domain.InvalidQuery: grpc.StatusCode.INVALID_ARGUMENT,
        EmbedderUnavailable: grpc.StatusCode.UNAVAILABLE,
        NotRecorded: grpc.StatusCode.UNAVAILABLE,
    },
    withheld={NotRecorded: "the search could not be recorded; retry shortly"},
)

MODES: dict[int, Mode] = {
    search_pb2.SEARCH_MODE_UNSPECIFIED: Mode.HYBRID,
    search_pb2.SEARCH_MODE_DENSE: Mode.DENSE,
    search_pb2.SEARCH_MODE_SPARSE: Mode.SPARSE,
    search_pb2.SEARCH_MODE_HYBRID: Mode.HYBRID,
}


class SearchApi:
    def __init__(self, searcher: Searcher, meter: SearchMeter) -> None:
        self._searcher = searcher
        self._meter = meter

    async def Search(
        self, request: search_pb2.SearchRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> search_pb2.SearchReply:
        async with _ERRORS.scope(context, "Search"):
            query = domain.parse_query(
                request.tenant_id,
                request.query,
                request.k,
                _mode(request.mode),
                request.filter.modality,
                dict(request.filter.metadata),
            )
            traceparent = metadata_value(context, "traceparent")
            found = await self._searcher.search(query, traceparent)
            # Results that were not billed are never returned.
            with span("search: metering append"):
                await self._meter.record(query, found, traceparent, request.api_key_id or None)
            return search_pb2.SearchReply(
                results=[
                    search_pb2.SearchResult(
                        atom_id=hit.payload["atom_id"],
                        document_id=hit.payload["document_id"],
                        score=hit.score,
                        snippet=hit.payload["snippet"],
                        chunk_index=hit.payload["chunk_index"],
                    )
                    for hit in found.hits
                ]
            )


def _mode(value: int) -> Mode:
    try:
        return MODES[value]
    except KeyError:
        raise domain.InvalidQuery(f"unknown search mode {value}") from None

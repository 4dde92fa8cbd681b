"""The hartonomous.v1.Search gRPC servicer: translates messages, nothing more.

The tenant comes from the request's tenant_id, which the gateway sets from the caller's API
key; the user's filter can only narrow within it (domain.Filter). A search is answered only once
the meter has appended its receipt and usage (metering.py)."""

from __future__ import annotations

import logging
from typing import Any

import grpc

from hartonomous.runtime.grpc_server import metadata_value
from hartonomous.v1 import search_pb2
from services.search import domain
from services.search.domain import Mode
from services.search.embedder import EmbedderUnavailable
from services.search.metering import SearchMeter
from services.search.queries import Searcher

log = logging.getLogger(__name__)

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
        try:
            query = domain.parse_query(
                request.tenant_id,
                request.query,
                request.k,
                _mode(request.mode),
                request.filter.modality,
                dict(request.filter.metadata),
            )
        except domain.InvalidQuery as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        traceparent = metadata_value(context, "traceparent")
        try:
            hits = await self._searcher.search(query, traceparent)
        except EmbedderUnavailable as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"cannot embed the query ({exc}); sparse mode does not need inference",
            )
        except Exception:
            # The client gets a status, never our stack trace; the log gets the trace.
            log.exception("Search failed", extra={"tenant_id": request.tenant_id})
            await context.abort(grpc.StatusCode.INTERNAL, "search failed; see the search log")
        try:
            await self._meter.record(query, hits, traceparent, request.api_key_id or None)
        except Exception:
            # Results that were not billed are never returned.
            log.exception("Search metering failed", extra={"tenant_id": request.tenant_id})
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, "the search could not be recorded; retry shortly"
            )
        return search_pb2.SearchReply(
            results=[
                search_pb2.SearchResult(
                    atom_id=hit.payload["atom_id"],
                    document_id=hit.payload["document_id"],
                    score=hit.score,
                    snippet=hit.payload["snippet"],
                    chunk_index=hit.payload["chunk_index"],
                )
                for hit in hits
            ]
        )


def _mode(value: int) -> Mode:
    try:
        return MODES[value]
    except KeyError:
        raise domain.InvalidQuery(f"unknown search mode {value}") from None

"""Search metering: every answered search leaves a receipt and is billed one request.

`SearchMeter.record` appends SearchPerformed (on `search`) and the UsageRecorded it caused (on
`usage`) in one atomic log write. The API calls it after the search and before the reply, so
no caller gets results the log has not billed, and no search is billed without its receipt.

The receipt keeps a SHA-256 of the query, never its text: the log is immutable, and a query
may hold what a tenant would not want kept forever (a name, a secret pasted by mistake).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from hartonomous.eventlog.port import EventLog
from hartonomous.events import AvroCodec, Envelope, Event, encode_event, usage_quantity
from services.search.domain import Hit, Mode, SearchQuery

PRODUCED_BY = "search"
SEARCH_TOPIC = "search"
USAGE_TOPIC = "usage"


class SearchMeter:
    def __init__(self, log: EventLog, codec: AvroCodec) -> None:
        self._log = log
        self._codec = codec

    async def record(
        self,
        query: SearchQuery,
        hits: Sequence[Hit],
        traceparent: str | None,
        api_key_id: str | None = None,
    ) -> None:
        """Append the receipt and its usage, or raise with neither appended."""
        envelope = Envelope.new(
            "SearchPerformed", query.tenant_id, PRODUCED_BY, traceparent=traceparent
        )
        searched = Event(envelope, receipt_payload(query, hits, api_key_id))
        usage = Event(envelope.caused("UsageRecorded", PRODUCED_BY), usage_payload(searched))
        await self._log.append_atomic(
            [
                encode_event(self._codec, searched, SEARCH_TOPIC, query.tenant_id),
                encode_event(self._codec, usage, USAGE_TOPIC, query.tenant_id),
            ]
        )


def receipt_payload(
    query: SearchQuery, hits: Sequence[Hit], api_key_id: str | None
) -> dict[str, Any]:
    """The SearchPerformed payload: what was asked (the text only as a hash) and what came back."""
    text = query.text.encode()
    return {
        "tenant_id": query.tenant_id,
        "query_sha256": hashlib.sha256(text).hexdigest(),
        "query_bytes": len(text),
        "mode": query.mode.value,
        "k": query.k,
        "modality": query.modality or None,
        "metadata_filter": dict(query.metadata),
        "model_version": _model_version(query.mode, hits),
        "results": [
            {
                "atom_id": hit.payload["atom_id"],
                "document_id": hit.payload["document_id"],
                "chunk_index": hit.payload["chunk_index"],
                "score": hit.score,
            }
            for hit in hits
        ],
        "api_key_id": api_key_id,
    }


def _model_version(mode: Mode, hits: Sequence[Hit]) -> str | None:
    """Dense and hybrid searches compare only the query vector's model's points, so every hit
    names that model; sparse scores involve no model."""
    if mode is Mode.SPARSE or not hits:
        return None
    return str(hits[0].payload["model_version"])


def usage_payload(searched: Event) -> dict[str, Any]:
    """The UsageRecorded of a search: one request, at the receipt's time, naming the receipt."""
    receipt = searched.payload
    return {
        "tenant_id": receipt["tenant_id"],
        "operation": "search",
        "unit": "requests",
        "quantity": usage_quantity(1),  # one request, whatever it returned
        "resource_id": searched.envelope.event_id,
        "used_at": searched.envelope.occurred_at,
        "api_key_id": receipt["api_key_id"],
        "dimensions": {"mode": receipt["mode"]},
    }

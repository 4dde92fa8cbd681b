"""Search metering: every answered search leaves a receipt and is billed one request.

`SearchMeter.record` publishes SearchPerformed and the UsageRecorded it caused (one request,
and the query's embedding tokens when inference embedded it for this search) in one atomic
log write. The API calls it after the search and before the reply, so
no caller gets results the log has not billed, and no search is billed without its receipt.

The receipt keeps a SHA-256 of the query, never its text: the log is immutable, and a query
may hold what a tenant would not want kept forever (a name, a secret pasted by mistake). The
values of a metadata filter are kept sealed with the tenant's data key.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence

from hartonomous.events import Event, usage_quantity
from hartonomous.events.payloads import SearchPerformed, SearchResult, UsageRecorded
from hartonomous.runtime.publisher import Publisher
from hartonomous.sealing import Sealer, TenantErasedError
from services.search.domain import EmbedUsage, Found, Hit, Mode, SearchQuery

# How long a receipt may take to append before the search is refused (UNAVAILABLE, retry):
# well inside the gateway's 15 s search deadline, so a log outage is a prompt 503, not a 504.
RECEIPT_WITHIN_S = 8.0


class NotRecorded(Exception):
    """The receipt could not be appended: the search is not answered (nor billed)."""


class SearchMeter:
    def __init__(self, publisher: Publisher, sealer: Sealer) -> None:
        self._publisher = publisher
        self._sealer = sealer

    async def record(
        self,
        query: SearchQuery,
        found: Found,
        traceparent: str | None,
        api_key_id: str | None = None,
    ) -> None:
        """Publish the receipt and its usage, or raise NotRecorded with none of them appended."""
        receipt = receipt_payload(query, found.hits, api_key_id)
        if receipt.metadata_filter:
            receipt = await self._sealed(receipt)
        searched = self._publisher.new(
            receipt,
            tenant_id=query.tenant_id,
            traceparent=traceparent,
        )
        usage = [self._publisher.caused(searched, usage_payload(searched))]
        if found.embed_usage is not None:
            tokens = embed_usage_payload(searched, found.embed_usage)
            usage.append(self._publisher.caused(searched, tokens))
        try:
            await self._publisher.publish(searched, *usage, within=RECEIPT_WITHIN_S)
        except Exception as exc:
            raise NotRecorded(f"appending the receipt failed: {exc!r}") from exc

    async def _sealed(self, receipt: SearchPerformed) -> SearchPerformed:
        """The filter's values are the tenant's words: sealed with its data key."""
        tenant, sealer = receipt.tenant_id, self._sealer
        try:
            values = {k: await sealer.seal(tenant, v) for k, v in receipt.metadata_filter.items()}
        except TenantErasedError as exc:
            raise NotRecorded(str(exc)) from None
        return dataclasses.replace(receipt, metadata_filter=values)


def receipt_payload(
    query: SearchQuery, hits: Sequence[Hit], api_key_id: str | None
) -> SearchPerformed:
    """What was asked (the text only as a hash) and what came back."""
    text = query.text.encode()
    return SearchPerformed(
        tenant_id=query.tenant_id,
        query_sha256=hashlib.sha256(text).hexdigest(),
        query_bytes=len(text),
        mode=query.mode.value,
        k=query.k,
        modality=query.modality or None,
        metadata_filter=dict(query.metadata),
        model_version=_model_version(query.mode, hits),
        results=[
            SearchResult(
                atom_id=hit.payload["atom_id"],
                document_id=hit.payload["document_id"],
                chunk_index=hit.payload["chunk_index"],
                score=hit.score,
            )
            for hit in hits
        ],
        api_key_id=api_key_id,
    )


def _model_version(mode: Mode, hits: Sequence[Hit]) -> str | None:
    """Dense and hybrid searches compare only the query vector's model's points, so every hit
    names that model; sparse scores involve no model."""
    if mode is Mode.SPARSE or not hits:
        return None
    return str(hits[0].payload["model_version"])


def usage_payload(searched: Event[SearchPerformed]) -> UsageRecorded:
    """One request, at the receipt's time, naming the receipt."""
    receipt = searched.payload
    return UsageRecorded(
        tenant_id=receipt.tenant_id,
        operation="search",
        unit="requests",
        quantity=usage_quantity(1),  # one request, whatever it returned
        resource_id=searched.envelope.event_id,
        used_at=searched.envelope.occurred_at,
        api_key_id=receipt.api_key_id,
        dimensions={"mode": receipt.mode},
    )


def embed_usage_payload(searched: Event[SearchPerformed], embedded: EmbedUsage) -> UsageRecorded:
    """The query's embedding tokens, as inference meters any Embed call: against the exact model
    version, on the device it ran on."""
    return UsageRecorded(
        tenant_id=searched.payload.tenant_id,
        operation="embed",
        unit="tokens",
        quantity=usage_quantity(embedded.tokens),
        resource_id=embedded.model_version,
        used_at=searched.envelope.occurred_at,
        api_key_id=searched.payload.api_key_id,
        dimensions={"device": embedded.device},
    )

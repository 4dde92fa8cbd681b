"""The ingest command and the catalog's event handlers (one function per consumed event type).

IngestAtom, in the order that makes a crash harmless:
1. the bytes stream into the blob store, checked on the way (size, content, hash), and are
   durable before anything refers to them: a crash from here to 3 leaves at worst an orphan
   blob, which `gc.garbage_collect_orphans` removes;
2. new text is chunked and the chunks are stored as blobs of their own (same rule);
3. one atomic publish: AtomIngested (bytes never stored) or AtomReferenced (a dedup hit: no
   second copy, no re-chunking), AtomChunked for new text, and the UsageRecorded that bills it;
4. the request applies its own events to the catalog (read-your-writes); the consumer group
   applies them again harmlessly, and everything this process did not append.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from hartonomous.blobs import BlobHashMismatchError, BlobStore
from hartonomous.events import Event, new_event_id
from hartonomous.events.payloads import (
    AtomChunked,
    AtomIngested,
    AtomReferenced,
    AtomReleased,
    ModelDecomposed,
    ModelVersionPromoted,
    Payload,
    TenantErased,
)
from hartonomous.runtime.projection import Handler, Projection
from hartonomous.runtime.publisher import Publisher
from hartonomous.sealing import Sealer, TenantErasedError
from services.ingest.chunking import TextChunker
from services.ingest.domain import content, errors, payloads
from services.ingest.domain.chunks import Chunk, Span
from services.ingest.domain.content import Content, ContentProbe
from services.ingest.domain.header import IngestHeader
from services.ingest.domain.results import IngestResult
from services.ingest.store import Catalog, CatalogWriter
from services.ingest.tunables import CATALOG_BATCH, CATALOG_GROUP

logger = logging.getLogger(__name__)


MAX_MODEL_BYTES = 64 * 1024**3
"""The largest model file IngestModel takes, by default (it is spooled to disk, not held)."""

RYW_ATTEMPTS = 4
"""Tries at the request's own catalog update when it deadlocks with the consumer."""

CHUNK_WRITES = 8
"""Chunk blobs written at once: each is small and waits mostly on its fsync."""


@dataclass(frozen=True)
class Deps:
    catalog: Catalog
    blobs: BlobStore
    publisher: Publisher
    chunker: TextChunker
    sealer: Sealer
    max_content_bytes: int = content.MAX_CONTENT_BYTES
    max_model_bytes: int = MAX_MODEL_BYTES


# ---------------------------------------------------------------------------------------
# The command


async def ingest_atom(deps: Deps, header: IngestHeader, data: AsyncIterator[bytes]) -> IngestResult:
    """Raises errors.IngestError for what the caller has to fix; nothing is stored then."""
    sealed = await seal_header(deps, header)
    probe = ContentProbe(
        header, limit=deps.max_content_bytes, text_prefix=deps.chunker.policy.max_bytes
    )
    try:
        blob = await deps.blobs.put(_probed(data, probe), header.expected_sha256)
    except BlobHashMismatchError as exc:
        raise errors.InvalidArgument(f"expected_sha256 does not match the bytes: {exc}") from None
    content = probe.content
    atom_id = blob.sha256
    request_id = header.request_id or new_event_id()
    stored = await deps.catalog.find(atom_id)
    # Bytes no tenant references any more are treated as new: their blobs are (being) removed.
    if stored is None or not stored.referenced:
        chunks = await _chunk(deps, atom_id, content)
        events = _ingested(deps, atom_id, sealed, content, chunks, request_id)
        result = IngestResult(
            atom_id,
            False,
            content.modality,
            content.mime_type,
            content.size,
            [c.atom_id for c in chunks],
            request_id,
        )
    else:
        events = [new_event(deps, payloads.referenced_payload(atom_id, sealed), header, request_id)]
        result = IngestResult(
            atom_id,
            True,
            stored.modality,
            stored.mime_type,
            stored.size_bytes,
            stored.chunk_atom_ids,
            request_id,
        )
    usage = payloads.usage_payload(
        header, atom_id, content.size, result.deduplicated, datetime.now(UTC)
    )
    await deps.publisher.publish(*events, deps.publisher.caused(events[0], usage))
    await read_your_writes(deps.catalog, events)
    return result


async def seal_header(deps: Deps, header: IngestHeader) -> IngestHeader:
    """The header with what the tenant wrote freely (metadata, source) as the events carry it."""
    metadata = await seal(deps, header.tenant_id, header.metadata_json)
    assert metadata is not None
    source = await seal(deps, header.tenant_id, header.source_uri)
    return dataclasses.replace(header, metadata_json=metadata, source_uri=source)


async def seal(deps: Deps, tenant_id: str, value: str | None) -> str | None:
    """A free-form field sealed with the tenant's data key; refused once the tenant is erased."""
    try:
        return await deps.sealer.seal_optional(tenant_id, value)
    except TenantErasedError as exc:
        raise errors.FailedPrecondition(str(exc)) from None


async def _probed(data: AsyncIterator[bytes], probe: ContentProbe) -> AsyncIterator[bytes]:
    """The stream, checked as it passes: an error raised here aborts the blob write."""
    async for part in data:
        probe.feed(part)
        yield part
    probe.finish()


async def _chunk(deps: Deps, atom_id: str, content: Content) -> list[Chunk]:
    """Chunk new text and store each distinct chunk as a blob (before any event names it)."""
    text = content.text
    if text is None:
        return []
    chunks = await asyncio.to_thread(deps.chunker.chunk, text)
    spans = {c.atom_id: c.span for c in chunks if c.atom_id != atom_id}
    limit = asyncio.Semaphore(CHUNK_WRITES)

    async def store(span: Span) -> None:
        async with limit:
            await deps.blobs.put(single(text[span.start_char : span.end_char].encode()))

    await asyncio.gather(*(store(span) for span in spans.values()))
    return chunks


async def single(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _ingested(
    deps: Deps,
    atom_id: str,
    header: IngestHeader,
    content: Content,
    chunks: Sequence[Chunk],
    request_id: str,
) -> list[Event[Payload]]:
    ingested = new_event(
        deps, payloads.ingested_payload(atom_id, header, content), header, request_id
    )
    if not chunks:
        return [ingested]
    policy = deps.chunker.policy
    chunked = payloads.chunked_payload(atom_id, header.tenant_id, policy.chunker, chunks)
    return [ingested, deps.publisher.caused(ingested, chunked)]


class _Traced(Protocol):
    @property
    def tenant_id(self) -> str: ...

    @property
    def traceparent(self) -> str | None: ...


def new_event(deps: Deps, payload: Payload, header: _Traced, request_id: str) -> Event[Payload]:
    """An event of one request: the caller's tenant, its trace, one correlation id."""
    return deps.publisher.new(
        payload,
        tenant_id=header.tenant_id,
        correlation_id=request_id,
        traceparent=header.traceparent,
    )


async def read_your_writes(catalog: Catalog, events: Sequence[Event[Payload]]) -> None:
    """Apply what this request appended, so a GetAtom right after sees it. The append already
    decided the outcome: if this fails, the consumer applies the events instead. The consumer
    may be applying the same rows in another order (a model's hundreds of atoms): a deadlock
    is retried."""
    for attempt in range(1, RYW_ATTEMPTS + 1):
        try:
            async with catalog.transaction() as tx:
                for event in events:
                    await HANDLERS[type(event.payload)](tx, event)
            return
        except asyncpg.exceptions.DeadlockDetectedError:
            if attempt < RYW_ATTEMPTS:
                await asyncio.sleep(random.uniform(0.05, 0.2) * attempt)
                continue
            logger.exception("catalog update after append failed; the consumer will apply it")
        except Exception:
            logger.exception("catalog update after append failed; the consumer will apply it")
            return


# ---------------------------------------------------------------------------------------
# The catalog projection of the `atoms` topic


async def on_atom_ingested(tx: CatalogWriter, event: Event[AtomIngested]) -> None:
    atom = event.payload
    at, event_id = event.envelope.occurred_at, event.envelope.event_id
    await tx.upsert_atoms(
        {atom.atom_id: atom.size_bytes}, atom.modality, atom.mime_type, at, event_id
    )
    await _upsert_ref(tx, event)


async def on_atom_referenced(tx: CatalogWriter, event: Event[AtomReferenced]) -> None:
    await _upsert_ref(tx, event)


async def on_atom_released(tx: CatalogWriter, event: Event[AtomReleased]) -> None:
    released = event.payload
    await tx.release_ref(
        released.tenant_id, released.atom_id, event.envelope.occurred_at, event.envelope.event_id
    )


async def on_tenant_erased(tx: CatalogWriter, event: Event[TenantErased]) -> None:
    envelope = event.envelope
    await tx.erase_tenant(event.payload.tenant_id, envelope.occurred_at, envelope.event_id)


async def on_atom_chunked(tx: CatalogWriter, event: Event[AtomChunked]) -> None:
    """The chunks become atoms of their own (text/plain: a slice of JSON is no JSON)."""
    chunked = event.payload
    chunks = [
        Chunk(c.index, c.atom_id, Span(c.start_char, c.end_char, c.start_byte, c.end_byte))
        for c in chunked.chunks
    ]
    at, event_id = event.envelope.occurred_at, event.envelope.event_id
    sizes = {c.atom_id: c.span.end_byte - c.span.start_byte for c in chunks}
    await tx.upsert_atoms(sizes, "text", content.normalise_mime(content.PLAIN_TEXT), at, event_id)
    await tx.put_chunk_set(chunked.parent_atom_id, chunked.chunker, chunks, event_id)


async def _upsert_ref(
    tx: CatalogWriter, event: Event[AtomIngested] | Event[AtomReferenced]
) -> None:
    ref = event.payload
    await tx.upsert_ref(
        ref.tenant_id,
        ref.atom_id,
        ref.metadata_json,
        ref.source_uri,
        event.envelope.occurred_at,
        event.envelope.event_id,
    )


async def on_model_decomposed(tx: CatalogWriter, event: Event[ModelDecomposed]) -> None:
    envelope = event.envelope
    await tx.put_model_version(
        event.payload, envelope.occurred_at, envelope.correlation_id or "", envelope.event_id
    )


async def on_model_version_promoted(tx: CatalogWriter, event: Event[ModelVersionPromoted]) -> None:
    await tx.put_promotion(event.payload, event.envelope.occurred_at, event.envelope.event_id)


HANDLERS: Mapping[type[Payload], Handler[CatalogWriter]] = {
    AtomIngested: on_atom_ingested,
    AtomReferenced: on_atom_referenced,
    AtomReleased: on_atom_released,
    TenantErased: on_tenant_erased,
    AtomChunked: on_atom_chunked,
    ModelDecomposed: on_model_decomposed,
    ModelVersionPromoted: on_model_version_promoted,
}


def catalog_projection(catalog: Catalog) -> Projection[CatalogWriter]:
    """The `atoms` and `models` topics into the catalog: a batch per transaction, claimed in
    the inbox."""
    return Projection(
        CATALOG_GROUP,
        ["atoms", "models"],
        HANDLERS,
        catalog.transaction,
        claim=CatalogWriter.claim,
        max_batch=CATALOG_BATCH,
    )

"""The ingest command and the catalog's event handlers (one function per consumed event type).

IngestAtom, in the order that makes a crash harmless:
1. the bytes stream into the blob store, checked on the way (size, content, hash), and are
   durable before anything refers to them: a crash from here to 3 leaves at worst an orphan
   blob, which `gc.garbage_collect_orphans` removes;
2. new text is chunked and the chunks are stored as blobs of their own (same rule);
3. one atomic append: AtomIngested (bytes never stored) or AtomReferenced (a dedup hit: no
   second copy, no re-chunking), AtomChunked for new text, and the UsageRecorded that bills it;
4. the request applies its own events to the catalog (read-your-writes); the consumer group
   applies them again harmlessly, and everything this process did not append.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hartonomous.blobs import BlobHashMismatchError, BlobStore
from hartonomous.eventlog.port import EventLog, StoredRecord
from hartonomous.events import AvroCodec, Envelope, Event, encode_event, new_event_id
from hartonomous.runtime.consumer import Handler
from services.ingest import domain
from services.ingest.chunking import TextChunker
from services.ingest.domain import Chunk, Content, ContentProbe, IngestHeader, IngestResult, Span
from services.ingest.store import Catalog, CatalogWriter

log = logging.getLogger(__name__)

CHUNK_WRITES = 8
"""Chunk blobs written at once: each is small and waits mostly on its fsync."""


@dataclass(frozen=True)
class Deps:
    catalog: Catalog
    blobs: BlobStore
    log: EventLog
    codec: AvroCodec
    chunker: TextChunker
    max_content_bytes: int = domain.MAX_CONTENT_BYTES


# ---------------------------------------------------------------------------------------
# The command


async def ingest_atom(deps: Deps, header: IngestHeader, data: AsyncIterator[bytes]) -> IngestResult:
    """Raises domain.IngestError for what the caller has to fix; nothing is stored then."""
    probe = ContentProbe(
        header, limit=deps.max_content_bytes, text_prefix=deps.chunker.policy.max_bytes
    )
    try:
        blob = await deps.blobs.put(_probed(data, probe), header.expected_sha256)
    except BlobHashMismatchError as exc:
        raise domain.InvalidArgument(f"expected_sha256 does not match the bytes: {exc}") from None
    content = probe.content
    atom_id = blob.sha256
    request_id = header.request_id or new_event_id()
    stored = await deps.catalog.find(atom_id)
    if stored is None:
        chunks = await _chunk(deps, atom_id, content)
        events = _ingested(atom_id, header, content, chunks, request_id, deps.chunker)
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
        events = [_referenced(atom_id, header, request_id)]
        result = IngestResult(
            atom_id,
            True,
            stored.modality,
            stored.mime_type,
            stored.size_bytes,
            stored.chunk_atom_ids,
            request_id,
        )
    usage = _usage(events[0], header, atom_id, content.size, result.deduplicated)
    records = [encode_event(deps.codec, e, domain.ATOMS_TOPIC, atom_id) for e in events]
    records.append(encode_event(deps.codec, usage, domain.USAGE_TOPIC, header.tenant_id))
    await deps.log.append_atomic(records)
    await _read_your_writes(deps.catalog, events)
    return result


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
            await deps.blobs.put(_single(text[span.start_char : span.end_char].encode()))

    await asyncio.gather(*(store(span) for span in spans.values()))
    return chunks


async def _single(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _ingested(
    atom_id: str,
    header: IngestHeader,
    content: Content,
    chunks: Sequence[Chunk],
    request_id: str,
    chunker: TextChunker,
) -> list[Event]:
    envelope = _new_envelope("AtomIngested", header, request_id)
    events = [Event(envelope, domain.ingested_payload(atom_id, header, content))]
    if chunks:
        payload = domain.chunked_payload(atom_id, header.tenant_id, chunker.policy.chunker, chunks)
        events.append(Event(envelope.caused("AtomChunked", domain.PRODUCED_BY), payload))
    return events


def _referenced(atom_id: str, header: IngestHeader, request_id: str) -> Event:
    envelope = _new_envelope("AtomReferenced", header, request_id)
    return Event(envelope, domain.referenced_payload(atom_id, header))


def _new_envelope(event_type: str, header: IngestHeader, request_id: str) -> Envelope:
    return Envelope.new(
        event_type,
        header.tenant_id,
        domain.PRODUCED_BY,
        correlation_id=request_id,
        traceparent=header.traceparent,
    )


def _usage(
    cause: Event, header: IngestHeader, atom_id: str, size: int, deduplicated: bool
) -> Event:
    envelope = cause.envelope.caused("UsageRecorded", domain.PRODUCED_BY)
    payload = domain.usage_payload(header, atom_id, size, deduplicated, datetime.now(UTC))
    return Event(envelope, payload)


async def _read_your_writes(catalog: Catalog, events: Sequence[Event]) -> None:
    """Apply what this request appended, so a GetAtom right after sees it. The append already
    decided the outcome: if this fails, the consumer applies the events instead."""
    try:
        async with catalog.transaction() as tx:
            for event in events:
                await project(tx, event)
    except Exception:
        log.exception("catalog update after append failed; the consumer will apply it")


# ---------------------------------------------------------------------------------------
# The catalog projection of the `atoms` topic


async def on_atom_ingested(tx: CatalogWriter, event: Event) -> None:
    atom = event.payload
    at, event_id = event.envelope.occurred_at, event.envelope.event_id
    await tx.upsert_atoms(
        {atom["atom_id"]: atom["size_bytes"]}, atom["modality"], atom["mime_type"], at, event_id
    )
    await _upsert_ref(tx, event)


async def on_atom_referenced(tx: CatalogWriter, event: Event) -> None:
    await _upsert_ref(tx, event)


async def on_atom_chunked(tx: CatalogWriter, event: Event) -> None:
    """The chunks become atoms of their own (text/plain: a slice of JSON is no JSON)."""
    chunked = event.payload
    chunks = [
        Chunk(
            c["index"],
            c["atom_id"],
            Span(c["start_char"], c["end_char"], c["start_byte"], c["end_byte"]),
        )
        for c in chunked["chunks"]
    ]
    at, event_id = event.envelope.occurred_at, event.envelope.event_id
    sizes = {c.atom_id: c.span.end_byte - c.span.start_byte for c in chunks}
    await tx.upsert_atoms(sizes, "text", domain.normalise_mime(domain.PLAIN_TEXT), at, event_id)
    await tx.put_chunk_set(chunked["parent_atom_id"], chunked["chunker"], chunks, event_id)


async def _upsert_ref(tx: CatalogWriter, event: Event) -> None:
    ref = event.payload
    await tx.upsert_ref(
        ref["tenant_id"],
        ref["atom_id"],
        ref["metadata_json"],
        ref["source_uri"],
        event.envelope.occurred_at,
        event.envelope.event_id,
    )


HANDLERS: dict[str, Callable[[CatalogWriter, Event], Awaitable[None]]] = {
    "AtomIngested": on_atom_ingested,
    "AtomReferenced": on_atom_referenced,
    "AtomChunked": on_atom_chunked,
}


async def project(tx: CatalogWriter, event: Event) -> None:
    handler = HANDLERS.get(event.event_type)
    if handler is not None:
        await handler(tx, event)


def catalog_handler(catalog: Catalog) -> Handler:
    """The ConsumerLoop handler: each record applied once, in its own transaction."""

    async def handle(event: Event, record: StoredRecord) -> None:
        if event.event_type not in HANDLERS:
            return
        async with catalog.transaction() as tx:
            if await tx.claim(record):
                await project(tx, event)

    return handle

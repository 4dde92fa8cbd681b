"""Event handlers of the inference consumer: one function per consumed event type.

Text atoms and their chunks are embedded; every embedding and the tokens they cost are
appended in one transaction, so the log never holds vectors nobody was billed for (or the
reverse). Event ids are derived from the source event's, so handling an event twice (the
consumer is at-least-once) re-emits the same events instead of billing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from hartonomous.blobs import BlobStore
from hartonomous.eventlog.port import EventLog, Record
from hartonomous.events import AvroCodec, Envelope, Event, derived_event_id, encode_event
from hartonomous.runtime.consumer import Handler, dispatch
from services.inference import domain
from services.inference.batching import Batcher
from services.inference.domain import AtomText, ModelInfo

log = logging.getLogger(__name__)

EMBED_SLICE = 256
"""Texts handed to the batcher at a time: interactive Embed calls queue between slices
instead of behind a whole large document."""


@dataclass(frozen=True)
class Deps:
    batcher: Batcher
    blobs: BlobStore
    log: EventLog
    codec: AvroCodec
    model: ModelInfo


async def on_atom_ingested(deps: Deps, event: Event) -> None:
    """A text atom gets a document-level vector (its first max_seq_length tokens)."""
    atom = event.payload
    if not domain.is_text_atom(atom["modality"], atom["mime_type"]):
        return
    data = await deps.blobs.get(atom["blob_key"])
    text = domain.document_text(atom["atom_id"], data)
    await _embed_and_emit(deps, event, atom["tenant_id"], [text])


async def on_atom_chunked(deps: Deps, event: Event) -> None:
    """Every chunk gets its own vector; the parent's bytes are read once for all of them."""
    chunked = event.payload
    parent_id = chunked["parent_atom_id"]
    parent = await deps.blobs.get(parent_id)
    texts = domain.chunk_texts(parent_id, parent, chunked["chunks"])
    await _embed_and_emit(deps, event, chunked["tenant_id"], texts)


async def on_config_changed(deps: Deps, event: Event) -> None:
    """Retune the batcher. A bad value is the publisher's mistake, not a bad event: it is
    logged and ignored rather than dead-lettered."""
    change = event.payload
    try:
        setting = domain.batch_setting(change["key"], change["new_value"])
        if setting is None:
            return
        await deps.batcher.update(
            max_batch_size=setting.max_batch_size, max_wait_ms=setting.max_wait_ms
        )
    except ValueError as exc:
        log.warning(
            "ignored an invalid inference setting",
            extra={"key": change["key"], "value": change["new_value"], "error": str(exc)},
        )
        return
    log.info("inference batching retuned", extra={"key": change["key"], **vars(setting)})


HANDLERS: dict[str, Callable[[Deps, Event], Awaitable[None]]] = {
    "AtomIngested": on_atom_ingested,
    "AtomChunked": on_atom_chunked,
    "ConfigChanged": on_config_changed,
}


def consumer_handler(deps: Deps) -> Handler:
    """The ConsumerLoop handler: dispatch by event type, ignore the rest, and turn content
    that can never be embedded into a PoisonEvent (dead-lettered without retries)."""
    return dispatch(HANDLERS, deps, domain.BadAtom)


async def _embed_and_emit(
    deps: Deps, cause: Event, tenant_id: str, atoms: Sequence[AtomText]
) -> None:
    if not atoms:
        return
    records: list[Record] = []
    tokens = 0
    for start in range(0, len(atoms), EMBED_SLICE):
        part = atoms[start : start + EMBED_SLICE]
        embedded = await deps.batcher.embed_counted([atom.text for atom in part])
        tokens += int(embedded.tokens.sum())
        for atom, vector in zip(part, embedded.vectors.tolist(), strict=True):
            payload = domain.embedding_payload(atom.atom_id, tenant_id, deps.model, vector)
            envelope = _caused(cause, "EmbeddingComputed", tenant_id, atom.atom_id)
            records.append(
                encode_event(
                    deps.codec, Event(envelope, payload), domain.EMBEDDINGS_TOPIC, atom.atom_id
                )
            )
    now = datetime.now(UTC)
    for unit, quantity, subject in (
        ("tokens", tokens, tenant_id),  # the subject every tokens event id was derived from
        ("chunks", len(atoms), f"{tenant_id}/chunks"),
    ):
        usage = domain.usage_payload(tenant_id, unit, quantity, deps.model, now)
        envelope = _caused(cause, "UsageRecorded", tenant_id, subject)
        records.append(
            encode_event(deps.codec, Event(envelope, usage), domain.USAGE_TOPIC, tenant_id)
        )
    await deps.log.append_atomic(records)


def _caused(cause: Event, event_type: str, tenant_id: str, subject: str) -> Envelope:
    envelope = cause.envelope.caused(event_type, domain.PRODUCED_BY, tenant_id)
    event_id = derived_event_id(cause.envelope.event_id, f"{event_type}/{subject}")
    return replace(envelope, event_id=event_id)

"""The inference commands and event handlers (one function per consumed event type).

Embed (the gRPC call): the texts go through the shared Batcher, and the call's tokens are
metered with one UsageRecorded before the vectors are returned, unless the calling service
appends that usage itself with its own receipt (search does: one write per search, not two).

The projection: text atoms and their chunks are embedded; every embedding and the tokens they
cost are published in one atomic write, so the log never holds vectors nobody was billed for
(or the reverse). Event ids are derived from the source event's, so handling an event twice
(the consumer is at-least-once) re-emits the same events instead of billing twice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from hartonomous.blobs import BlobStore
from hartonomous.chunks import ChunkMismatch
from hartonomous.events import Event, derived_event_id
from hartonomous.events.payloads import (
    AtomChunked,
    AtomIngested,
    EmbeddingComputed,
    Payload,
    UsageRecorded,
)
from hartonomous.runtime.projection import Handler, Projection
from hartonomous.runtime.publisher import Publisher
from hartonomous.telemetry import span
from services.inference import domain
from services.inference.batching import Embedded
from services.inference.domain import AtomText, ModelInfo
from services.inference.generation import Recorder, Served
from services.inference.slot import ModelSlot, Slot

logger = logging.getLogger(__name__)

GROUP = "inference"
TOPICS = ("atoms",)
EMBED_SLICE = 256
"""Texts handed to the batcher at a time: interactive Embed calls queue between slices
instead of behind a whole large document."""


@dataclass(frozen=True)
class Deps:
    model: ModelSlot
    blobs: BlobStore
    publisher: Publisher
    generator: Slot[Served]
    recorder: Recorder


# ---------------------------------------------------------------------------------------
# The command


async def embed(
    deps: Deps,
    texts: Sequence[str],
    tenant_id: str,
    model: str,
    traceparent: str | None,
    *,
    usage_appended_by_caller: bool = False,
) -> tuple[Embedded, ModelInfo]:
    """The vectors and the model that computed them. Raises domain.RequestError for what the
    caller has to fix, domain.ModelLoading while the model is not loaded."""
    domain.validate_embed_request(texts, tenant_id, model)
    loaded = await deps.model.get()
    embedded = await loaded.batcher.embed_counted(texts)
    if usage_appended_by_caller:
        return embedded, loaded.info
    usage = domain.usage_payload(
        tenant_id, "tokens", int(embedded.tokens.sum()), loaded.info, datetime.now(UTC)
    )
    with span("inference: metering append"):
        await deps.publisher.publish(
            deps.publisher.new(usage, tenant_id=tenant_id, traceparent=traceparent)
        )
    return embedded, loaded.info


# ---------------------------------------------------------------------------------------
# The projection


async def on_atom_ingested(deps: Deps, event: Event[AtomIngested]) -> None:
    """A text atom gets a document-level vector (its first max_seq_length tokens)."""
    atom = event.payload
    if not domain.is_text_atom(atom.modality, atom.mime_type):
        return
    data = await deps.blobs.get(atom.blob_key)
    text = domain.document_text(atom.atom_id, data)
    await _embed_and_publish(deps, event, atom.tenant_id, [text])


async def on_atom_chunked(deps: Deps, event: Event[AtomChunked]) -> None:
    """Every chunk gets its own vector; the parent's bytes are read once for all of them."""
    chunked = event.payload
    parent = await deps.blobs.get(chunked.parent_atom_id)
    texts = domain.chunk_texts(chunked.parent_atom_id, parent, chunked.chunks)
    await _embed_and_publish(deps, event, chunked.tenant_id, texts)


HANDLERS: Mapping[type[Payload], Handler[Deps]] = {
    AtomIngested: on_atom_ingested,
    AtomChunked: on_atom_chunked,
}


def inference_projection(deps: Deps) -> Projection[Deps]:
    """Each event's effects are one atomic publish, so records are applied one at a time;
    content that can never be embedded is dead-lettered without retries."""
    return Projection.one_at_a_time(
        GROUP, TOPICS, HANDLERS, deps, poison=(domain.BadAtom, ChunkMismatch)
    )


async def _embed_and_publish(
    deps: Deps, cause: Event[Payload], tenant_id: str, atoms: Sequence[AtomText]
) -> None:
    if not atoms:
        return
    loaded = await deps.model.get()
    events: list[Event[Payload]] = []
    tokens = 0
    for start in range(0, len(atoms), EMBED_SLICE):
        part = atoms[start : start + EMBED_SLICE]
        embedded = await loaded.batcher.embed_counted([atom.text for atom in part])
        tokens += int(embedded.tokens.sum())
        for atom, vector in zip(part, embedded.vectors.tolist(), strict=True):
            payload = domain.embedding_payload(atom.atom_id, tenant_id, loaded.info, vector)
            events.append(_caused(deps, cause, payload, tenant_id, atom.atom_id))
    now = datetime.now(UTC)
    for unit, quantity, subject in (
        ("tokens", tokens, tenant_id),  # the subject every tokens event id was derived from
        ("chunks", len(atoms), f"{tenant_id}/chunks"),
    ):
        usage = domain.usage_payload(tenant_id, unit, quantity, loaded.info, now)
        events.append(_caused(deps, cause, usage, tenant_id, subject))
    await deps.publisher.publish(*events)


def _caused(
    deps: Deps,
    cause: Event[Payload],
    payload: EmbeddingComputed | UsageRecorded,
    tenant_id: str,
    subject: str,
) -> Event[Payload]:
    name = f"{type(payload).__name__}/{subject}"
    event_id = derived_event_id(cause.envelope.event_id, name)
    return deps.publisher.caused(cause, payload, tenant_id=tenant_id, event_id=event_id)

"""The inference consumer on a real embedded log and a real blob directory: text atoms and
chunks become EmbeddingComputed + UsageRecorded, bad content is dead-lettered, and a change on
the control topic retunes the batcher (through the process's follower of `control`)."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import Any

import numpy as np

from hartonomous.eventlog.port import Record, StoredRecord
from hartonomous.eventlog.topics import dlq_topic
from hartonomous.events import Envelope, Event
from hartonomous.events.payloads import (
    AtomChunked,
    AtomIngested,
    ConfigChanged,
    Payload,
    TextChunk,
    to_avro,
)
from hartonomous.runtime.projection import ProjectionRunner
from services.inference.batching import DEFAULT_MAX_BATCH_SIZE
from services.inference.domain import MODEL_ID
from services.inference.handlers import GROUP
from services.inference.models.minilm import MiniLM
from tests.integration.inference.conftest import Running
from tests.support.events import record_of

TENANT = "acme"
DOCUMENT = (
    "Hartonomous stores every atom once. "
    "Chunks are atoms too, and each one is embedded on its own. "
    "Ünïcödé text keeps its byte offsets straight."
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def put(running: Running, data: bytes) -> str:
    async def chunks() -> AsyncIterator[bytes]:
        yield data

    return (await running.blobs.put(chunks())).sha256


def event(payload: Payload) -> tuple[Event[Payload], Record]:
    envelope = Envelope.new(
        type(payload).__name__, TENANT, "tests", traceparent="00-" + "ab" * 16 + "-01"
    )
    built = Event(envelope, payload)
    return built, record_of(built)


def ingested(
    atom_id: str, mime: str = "text/plain; charset=utf-8"
) -> tuple[Event[Payload], Record]:
    return event(
        AtomIngested(
            atom_id=atom_id,
            tenant_id=TENANT,
            modality="text" if mime.startswith(("text/", "application/json")) else "image",
            mime_type=mime,
            size_bytes=0,
            blob_key=atom_id,
        )
    )


def chunked(
    parent: bytes, spans: list[tuple[int, int]], atom_ids: list[str] | None = None
) -> tuple[Event[Payload], Record]:
    """Chunks of `parent` at byte spans; atom ids are the spans' hashes unless given."""
    ids = atom_ids or [sha(parent[start:end]) for start, end in spans]
    chunks = [
        TextChunk(
            index=i, atom_id=atom_id, start_char=0, end_char=0, start_byte=start, end_byte=end
        )
        for i, ((start, end), atom_id) in enumerate(zip(spans, ids, strict=True))
    ]
    return event(
        AtomChunked(parent_atom_id=sha(parent), tenant_id=TENANT, chunker="tests/v1", chunks=chunks)
    )


def config_changed(key: str, value: str) -> tuple[Event[Payload], Record]:
    return event(ConfigChanged(key=key, new_value=value, reason="test", actor="t"))


async def consume_until(
    running: Running,
    done: Callable[[], Awaitable[bool]],
    timeout: float = 60.0,
    consumer: ProjectionRunner[Any] | None = None,
) -> None:
    """Run the service's consumer (or `consumer`) until `await done()` is true."""
    if consumer is None:
        [consumer] = [c for c in running.harness.consumers if c.projection.group == GROUP]
    task = asyncio.create_task(consumer.run())
    try:
        async with asyncio.timeout(timeout):
            while not await done():  # noqa: ASYNC110 (the log offers no event to wait on)
                await asyncio.sleep(0.1)
    finally:
        consumer.stop()
        await task


async def count(running: Running, topic: str) -> int:
    return sum((await running.event_log.end_offsets(topic)).values())


async def test_text_atoms_and_chunks_are_embedded_and_billed(
    running: Running, model: MiniLM
) -> None:
    data = DOCUMENT.encode()
    parent_id = await put(running, data)
    second = DOCUMENT.index("Chunks")
    third = len(DOCUMENT[: DOCUMENT.index("Ünï")].encode())
    spans = [(0, second), (second, third), (third, len(data)), (0, len(data)), (0, second)]
    source_ingested, ingested_record = ingested(parent_id)
    source_chunked, chunked_record = chunked(data, spans)
    ignored = [ingested(sha(b"\x89PNG"), "image/png")[1]]  # not text: never read, no vector
    await running.event_log.append([*ignored, ingested_record, chunked_record])

    # The parent once as the document, three distinct chunks (the whole-text chunk and the
    # repeated first chunk are the same atoms again).
    await consume_until(running, lambda: _at_least(running, "usage", 4))

    embeddings = await running.events("embeddings")
    chunk_bytes = [data[s:e] for s, e in spans[:3]]
    expected_atoms = [parent_id, *(sha(c) for c in chunk_bytes)]
    assert sorted(e.payload.atom_id for e in embeddings) == sorted(expected_atoms)
    texts = {parent_id: DOCUMENT} | {sha(c): c.decode() for c in chunk_bytes}
    by_atom = {e.payload.atom_id: e for e in embeddings}
    for atom_id, text in texts.items():
        embedding = by_atom[atom_id]
        np.testing.assert_allclose(embedding.payload.vector, model.encode([text])[0], atol=1e-5)
        assert to_avro(embedding.payload) | {"vector": None} == {
            "atom_id": atom_id,
            "tenant_id": TENANT,
            "model_id": MODEL_ID,
            "model_version": model.version,
            "dim": 384,
            "vector": None,
            "normalized": True,
        }
        source = source_ingested if atom_id == parent_id else source_chunked
        assert embedding.envelope.causation_id == source.envelope.event_id
        assert embedding.envelope.correlation_id == source.envelope.correlation_id
        assert embedding.envelope.traceparent == source.envelope.traceparent
    keys = {r.key async for r in running.event_log.replay("embeddings", from_offset=0)}
    assert keys == {atom_id.encode() for atom_id in expected_atoms}

    usage = {
        (u.envelope.causation_id, u.payload.unit): u.payload.quantity
        for u in await running.events("usage")
    }
    tokens = {
        a: len(ids) for a, ids in zip(texts, model.tokenize(list(texts.values())), strict=True)
    }
    chunk_tokens = sum(tokens[sha(c)] for c in chunk_bytes)
    ingested_id, chunked_id = source_ingested.envelope.event_id, source_chunked.envelope.event_id
    # Tokens and texts embedded, each in the atomic write of the vectors they bill.
    assert usage == {
        (ingested_id, "tokens"): Decimal(tokens[parent_id]),
        (ingested_id, "chunks"): Decimal(1),
        (chunked_id, "tokens"): Decimal(chunk_tokens),
        (chunked_id, "chunks"): Decimal(3),
    }
    for record in await _records(running, "usage"):
        assert record.key == TENANT.encode()
    assert await count(running, dlq_topic("atoms")) == 0


async def test_a_redelivered_event_yields_the_same_event_ids(running: Running) -> None:
    atom_id = await put(running, b"delivered twice, billed once")
    await running.event_log.append([ingested(atom_id)[1]])
    [record] = await _records(running, "atoms")
    [consumer] = [c for c in running.harness.consumers if c.projection.group == GROUP]
    await consumer.apply([record])
    await consumer.apply([record])  # as after a crash before the offset commit

    for topic in ("embeddings", "usage"):
        events = await running.events(topic)
        first, again = events[: len(events) // 2], events[len(events) // 2 :]
        assert [e.envelope.event_id for e in first] == [e.envelope.event_id for e in again]
        assert record.headers["event_id"] not in {e.envelope.event_id for e in events}


async def test_bad_content_is_dead_lettered_and_later_events_still_flow(
    running: Running,
) -> None:
    not_utf8 = await put(running, b"caf\xe9 au lait")  # Latin-1, not UTF-8
    good = await put(running, b"a perfectly good sentence")
    parent = b"a parent whose chunk offsets are wrong"
    await put(running, parent)
    _, wrong = chunked(parent, [(0, 8)], atom_ids=[sha(parent[0:9])])  # off by one byte
    missing = "0" * 64
    await running.event_log.append(
        [ingested(not_utf8)[1], wrong, ingested(missing)[1], ingested(good)[1]]
    )

    await consume_until(running, lambda: _at_least(running, dlq_topic("atoms"), 3))
    await consume_until(running, lambda: _at_least(running, "embeddings", 1))

    dead = {r.headers["dlq_error"] for r in await _records(running, dlq_topic("atoms"))}
    assert any(f"atom {not_utf8} is not valid UTF-8" in e for e in dead), dead
    assert any("do not hash to" in e and "its atom id" in e for e in dead), dead
    assert any(f"no blob {missing}" in e for e in dead), dead
    [embedding] = await running.events("embeddings")
    assert embedding.payload.atom_id == good


async def test_config_changes_retune_the_batcher_and_bad_values_are_ignored(
    running: Running,
) -> None:
    before = running.service.batcher.stats()
    await running.event_log.append(
        [
            config_changed("inference.batch.max_batch_size", "8")[1],
            config_changed("inference.batch.max_wait_ms", "not a number")[1],
            config_changed("inference.batch.max_batch_size", "100000")[1],
            config_changed("search.hnsw.ef", "64")[1],
            config_changed("inference.batch.max_wait_ms", "12.5")[1],
        ]
    )
    follower = running.harness.control  # the process's own follower of `control`

    async def retuned() -> bool:
        stats = running.service.batcher.stats()
        return (stats.max_batch_size, stats.max_wait_ms) == (8, 12.5)

    await consume_until(running, retuned, consumer=follower)
    assert (before.max_batch_size, before.max_wait_ms) == (DEFAULT_MAX_BATCH_SIZE, 5.0)
    assert await count(running, dlq_topic("control")) == 0
    held = running.harness.ctx.config.held()  # the read-back telemetry reports
    assert held["inference.batch.max_batch_size"] == "8"
    assert held["inference.batch.max_wait_ms"] == "12.5"
    assert follower.group.startswith("control-follower.")


async def _at_least(running: Running, topic: str, n: int) -> bool:
    return await count(running, topic) >= n


async def _records(running: Running, topic: str) -> list[StoredRecord]:
    return [r async for r in running.event_log.replay(topic, from_offset=0)]

"""IngestAtom / GetAtom / ReadAtom over a real gRPC server, log, Postgres and blob directory."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from decimal import Decimal

import grpc
import pytest

from hartonomous.events.payloads import AtomChunked, AtomIngested, UsageRecorded
from hartonomous.sealing import is_sealed
from hartonomous.v1 import ingest_pb2
from services.ingest.domain.chunks import ChunkPolicy
from tests.integration.ingest.conftest import (
    LIMIT,
    PNG,
    Platform,
    event_types,
    prose,
    requests,
    sha256,
)

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


async def test_new_text_is_stored_chunked_and_metered_in_one_append(platform: Platform) -> None:
    text = prose(1500)
    data = text.encode()
    reply = await platform.ingest(
        data,
        metadata_json='{"title": "Ledger", "pages": 3}',
        source_uri="notes/ledger.txt",
        traceparent=TRACEPARENT,
        request_id="req-1",
        api_key_id="key-1",
    )

    assert (reply.atom_id, reply.deduplicated, reply.size_bytes) == (sha256(data), False, len(data))
    assert (reply.modality, reply.mime_type) == ("text", "text/plain; charset=utf-8")
    assert reply.chunk_count == len(reply.chunk_atom_ids) > 1
    assert reply.request_id == "req-1"

    ingested, chunked = await platform.events("atoms")
    [usage] = await platform.events("usage")
    assert event_types([ingested, chunked, usage]) == [
        "AtomIngested",
        "AtomChunked",
        "UsageRecorded",
    ]
    assert isinstance(ingested.payload, AtomIngested)
    assert isinstance(chunked.payload, AtomChunked)
    assert isinstance(usage.payload, UsageRecorded)
    # What the tenant wrote travels sealed with its data key, and opens to the canonical JSON.
    sealer, sealed = platform.deps.sealer, ingested.payload
    assert is_sealed(sealed.metadata_json) and sealed.source_uri and is_sealed(sealed.source_uri)
    assert await sealer.open("acme", sealed.metadata_json) == '{"pages":3,"title":"Ledger"}'
    assert await sealer.open_optional("acme", sealed.source_uri) == "notes/ledger.txt"
    assert ingested.payload.blob_key == reply.atom_id
    for event in (ingested, chunked, usage):
        assert event.envelope.correlation_id == "req-1"
        assert event.envelope.traceparent == TRACEPARENT
        assert event.envelope.tenant_id == "acme"
    assert (
        chunked.envelope.causation_id == usage.envelope.causation_id == ingested.envelope.event_id
    )
    assert usage.payload.quantity == Decimal(len(data))
    assert {
        k: getattr(usage.payload, k) for k in ("operation", "unit", "resource_id", "api_key_id")
    } == {
        "operation": "ingest",
        "unit": "bytes",
        "resource_id": reply.atom_id,
        "api_key_id": "key-1",
    }

    # Each chunk is the parent's bytes at its offsets, addressed by their hash, and readable.
    chunks = chunked.payload.chunks
    assert [c.atom_id for c in chunks] == list(reply.chunk_atom_ids)
    assert chunked.payload.chunker == ChunkPolicy().chunker
    for chunk in chunks:
        piece = data[chunk.start_byte : chunk.end_byte]
        assert piece == text[chunk.start_char : chunk.end_char].encode()
        assert sha256(piece) == chunk.atom_id
        assert await platform.read("acme", chunk.atom_id) == piece
    assert (chunks[0].start_byte, chunks[-1].end_byte) == (0, len(data))

    # Read-your-writes: the catalog has it the moment the call returns.
    atom = await platform.stub.GetAtom(
        ingest_pb2.GetAtomRequest(tenant_id="acme", atom_id=reply.atom_id)
    )
    assert (atom.modality, atom.mime_type, atom.size_bytes) == ("text", reply.mime_type, len(data))
    assert json.loads(atom.metadata_json) == {"title": "Ledger", "pages": 3}
    assert atom.source_uri == "notes/ledger.txt"
    assert atom.chunker == ChunkPolicy().chunker
    assert [(c.index, c.atom_id, c.start_byte, c.end_byte) for c in atom.chunks] == [
        (c.index, c.atom_id, c.start_byte, c.end_byte) for c in chunks
    ]
    assert atom.created_at.ToDatetime().year >= 2025
    assert await platform.read("acme", reply.atom_id) == data


async def test_the_same_bytes_from_another_tenant_are_a_reference(platform: Platform) -> None:
    data = prose(600).encode()
    first = await platform.ingest(data, tenant_id="acme")
    files = platform.blob_files()
    second = await platform.ingest(data, tenant_id="globex", metadata_json='{"team": "b"}')

    assert (first.deduplicated, second.deduplicated) == (False, True)
    assert second.atom_id == first.atom_id
    assert list(second.chunk_atom_ids) == list(first.chunk_atom_ids)
    assert (second.modality, second.mime_type, second.size_bytes) == (
        first.modality,
        first.mime_type,
        first.size_bytes,
    )
    assert platform.blob_files() == files  # no second copy, no new chunk blobs
    assert len([p for p in files if p.name == first.atom_id]) == 1

    atoms = await platform.events("atoms")
    assert event_types(atoms) == ["AtomIngested", "AtomChunked", "AtomReferenced"]
    assert atoms[2].payload.tenant_id == "globex"
    usage = await platform.events("usage")
    payloads = [u.payload for u in usage if isinstance(u.payload, UsageRecorded)]
    assert [(u.tenant_id, u.dimensions["deduplicated"]) for u in payloads] == [
        ("acme", "false"),
        ("globex", "true"),
    ]
    assert usage[1].envelope.causation_id == atoms[2].envelope.event_id

    seen_by_globex = await platform.stub.GetAtom(
        ingest_pb2.GetAtomRequest(tenant_id="globex", atom_id=first.atom_id)
    )
    assert json.loads(seen_by_globex.metadata_json) == {"team": "b"}
    assert len(seen_by_globex.chunks) == first.chunk_count


async def test_a_tenant_cannot_see_another_tenants_atoms(platform: Platform) -> None:
    reply = await platform.ingest(prose(800).encode(), tenant_id="acme")
    chunk_id = reply.chunk_atom_ids[1]
    for atom_id in (reply.atom_id, chunk_id, "f" * 64):
        with pytest.raises(grpc.aio.AioRpcError) as got:
            await platform.stub.GetAtom(
                ingest_pb2.GetAtomRequest(tenant_id="globex", atom_id=atom_id)
            )
        assert got.value.code() == grpc.StatusCode.NOT_FOUND
        assert got.value.details() == f"tenant globex holds no atom {atom_id}"
        with pytest.raises(grpc.aio.AioRpcError) as got:
            await platform.read("globex", atom_id)
        assert got.value.code() == grpc.StatusCode.NOT_FOUND
    # A chunk is visible through the text it belongs to.
    chunk = await platform.stub.GetAtom(
        ingest_pb2.GetAtomRequest(tenant_id="acme", atom_id=chunk_id)
    )
    assert (chunk.modality, chunk.mime_type, chunk.metadata_json) == (
        "text",
        "text/plain; charset=utf-8",
        "{}",
    )


async def test_a_short_text_is_its_own_single_chunk(platform: Platform) -> None:
    data = b"# Title\n\nA short note.\n"
    reply = await platform.ingest(data)
    assert reply.mime_type == "text/markdown; charset=utf-8"
    assert list(reply.chunk_atom_ids) == [reply.atom_id] == [sha256(data)]
    [blob] = platform.blob_files()  # the chunk is the atom: one blob
    assert blob.name == reply.atom_id


async def test_binary_content_is_sniffed_and_not_chunked(platform: Platform) -> None:
    reply = await platform.ingest(PNG, part=5)
    assert (reply.modality, reply.mime_type, reply.chunk_count) == ("image", "image/png", 0)
    assert event_types(await platform.events("atoms")) == ["AtomIngested"]
    data = bytes(range(256)) * 4000
    reply = await platform.ingest(data, part=300_000)
    assert reply.mime_type == "application/octet-stream" and reply.modality == "binary"
    assert await platform.read("acme", reply.atom_id) == data


async def test_the_call_metadata_traceparent_is_used_when_the_header_has_none(
    platform: Platform,
) -> None:
    await platform.stub.IngestAtom(requests(b"{}"), metadata=(("traceparent", TRACEPARENT),))
    ingested, chunked = await platform.events("atoms")
    assert ingested.payload.mime_type == "application/json"
    assert chunked.envelope.traceparent == TRACEPARENT
    assert ingested.envelope.traceparent == TRACEPARENT


def _no_header() -> Iterable[ingest_pb2.IngestRequest]:
    yield ingest_pb2.IngestRequest(data=b"hello")


def _two_headers() -> Iterable[ingest_pb2.IngestRequest]:
    yield from requests(b"hello")
    yield ingest_pb2.IngestRequest(header=ingest_pb2.IngestHeader(tenant_id="acme"))


Requests = Callable[[], Iterable[ingest_pb2.IngestRequest]]

BAD: list[tuple[str, Requests, str, str]] = [
    ("no header", _no_header, "INVALID_ARGUMENT", "first message must carry the header"),
    ("two headers", _two_headers, "INVALID_ARGUMENT", "only the first message"),
    (
        "no tenant",
        lambda: requests(b"hello", tenant_id=" "),
        "INVALID_ARGUMENT",
        "tenant_id is required",
    ),
    (
        "bad metadata",
        lambda: requests(b"hello", metadata_json="{oops"),
        "INVALID_ARGUMENT",
        "metadata_json is not valid JSON",
    ),
    (
        "metadata array",
        lambda: requests(b"hello", metadata_json="[1, 2]"),
        "INVALID_ARGUMENT",
        "metadata_json must be a JSON object",
    ),
    (
        "too big",
        lambda: requests(b"x" * (LIMIT + 1)),
        "RESOURCE_EXHAUSTED",
        "over the 1048576 byte limit",
    ),
    (
        "hash mismatch",
        lambda: requests(b"hello", expected_sha256=sha256(b"other")),
        "INVALID_ARGUMENT",
        "expected_sha256 does not match",
    ),
    (
        "bad modality",
        lambda: requests(b"hello", modality="smell"),
        "INVALID_ARGUMENT",
        "modality 'smell'",
    ),
    (
        "contradicting mime",
        lambda: requests(PNG, mime_type="application/pdf"),
        "INVALID_ARGUMENT",
        "mime_type is application/pdf but the bytes are image/png",
    ),
    ("empty", lambda: requests(b""), "INVALID_ARGUMENT", "no content"),
]


@pytest.mark.parametrize(
    ("stream", "code", "message"), [b[1:] for b in BAD], ids=[b[0] for b in BAD]
)
async def test_bad_input_is_refused_and_leaves_nothing_behind(
    platform: Platform, stream: Requests, code: str, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await platform.stub.IngestAtom(stream())
    assert got.value.code() == getattr(grpc.StatusCode, code)
    assert message in (got.value.details() or "")
    assert await platform.events("atoms") == []
    assert await platform.events("usage") == []
    assert platform.blob_files() == []


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (ingest_pb2.GetAtomRequest(tenant_id="", atom_id="a" * 64), "tenant_id is required"),
        (ingest_pb2.GetAtomRequest(tenant_id="acme", atom_id="xyz"), "atom_id must be a SHA-256"),
    ],
)
async def test_get_atom_checks_its_arguments(
    platform: Platform, request_: ingest_pb2.GetAtomRequest, message: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await platform.stub.GetAtom(request_)
    assert got.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert message in (got.value.details() or "")

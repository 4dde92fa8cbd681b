"""Models over a real gRPC server, log, Postgres and blob directory: SmolLM2's GGUF as a first
version, then a second that differs in one tensor (only that tensor and the manifest are stored
again); both come back byte for byte from their atoms; promotions say which version was live at
any moment, the same after the catalog is rebuilt from the log; a file that lies about itself,
or an append that fails, leaves no version, no reference and only collectable blobs."""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import asyncpg
import grpc
import pytest

from hartonomous.eventlog.port import Position, Record
from hartonomous.events.payloads import AtomIngested, AtomReferenced, ModelDecomposed
from hartonomous.modelfiles import smollm2_gguf
from hartonomous.tensor_atoms import tensor_bytes
from hartonomous.v1 import ingest_pb2
from services.ingest.gc import garbage_collect_orphans
from tests.integration.ingest.conftest import Platform

NAME = "smollm2-135m-instruct"
PIECE = 1 << 20


def model_requests(
    data: bytes, name: str = NAME, version: str = "v1", tenant_id: str = "acme"
) -> Iterator[ingest_pb2.IngestModelRequest]:
    header = ingest_pb2.ModelHeader(tenant_id=tenant_id, name=name, version=version)
    yield ingest_pb2.IngestModelRequest(header=header)
    for start in range(0, len(data), PIECE):
        yield ingest_pb2.IngestModelRequest(data=data[start : start + PIECE])


async def ingest(
    platform: Platform, data: bytes, version: str, **kw: str
) -> ingest_pb2.ModelVersion:
    reply: ingest_pb2.ModelVersion = await platform.stub.IngestModel(
        model_requests(data, version=version, **kw)
    )
    return reply


async def reassembled(platform: Platform, manifest_atom_id: str) -> bytes:
    document = json.loads(await platform.blobs.get(manifest_atom_id))
    pieces = []
    for part in document["parts"]:
        atom = await platform.blobs.get(part["atom"])
        pieces.append(tensor_bytes(atom) if part["kind"] == "tensor" else atom)
    return b"".join(pieces)


def one_tensor_changed(data: bytes, offset: int) -> bytes:
    changed = bytearray(data)
    changed[offset] ^= 0xFF
    return bytes(changed)


async def test_a_second_version_stores_only_what_changed_and_both_reassemble(
    platform: Platform,
) -> None:
    v1_bytes = smollm2_gguf().read_bytes()
    v1 = await ingest(platform, v1_bytes, "v1")
    assert (v1.format, v1.architecture, v1.tensors) == ("gguf", "llama", 272)
    assert (v1.new_tensors, v1.source_sha256) == (272, hashlib.sha256(v1_bytes).hexdigest())
    first_blobs = set(platform.blob_files())

    decomposed = [e.payload for e in await platform.events("models")]
    assert isinstance(decomposed[0], ModelDecomposed)
    q4 = next(t for t in decomposed[0].tensors if t.dtype == "Q4_1")
    document = json.loads(await platform.blobs.get(v1.manifest_atom_id))
    offset = next(
        sum(p["length"] for p in document["parts"][:i])
        for i, p in enumerate(document["parts"])
        if p["atom"] == q4.atom_id
    )
    v2_bytes = one_tensor_changed(v1_bytes, offset)
    v2 = await ingest(platform, v2_bytes, "v2")

    assert (v2.tensors, v2.new_tensors, v2.new_bytes) == (272, 1, q4.size_bytes)
    [shared] = v2.shared_with
    assert (shared.name, shared.version, shared.tensors) == (NAME, "v1", 271)
    decomposed2 = [e.payload for e in await platform.events("models")][-1]
    assert isinstance(decomposed2, ModelDecomposed)
    changed = next(t.atom_id for t in decomposed2.tensors if t.first_stored)
    new_blobs = set(platform.blob_files()) - first_blobs
    assert {p.name for p in new_blobs} == {changed, v2.manifest_atom_id}
    again = await platform.stub.GetModelVersion(
        ingest_pb2.GetModelVersionRequest(tenant_id="acme", name=NAME, version="v1")
    )
    assert [(s.version, s.tensors) for s in again.shared_with] == [("v2", 271)]

    # Storage is metered per tenant and atom: the shared tensors count once.
    [holding] = await platform.deps.catalog.holdings(datetime.now(UTC) + timedelta(seconds=1))
    assert holding.bytes == sum(p.stat().st_size for p in platform.blob_files())

    assert await reassembled(platform, v1.manifest_atom_id) == v1_bytes
    assert await reassembled(platform, v2.manifest_atom_id) == v2_bytes
    events = await platform.events("atoms")
    v2_events = [e.payload for e in events if e.envelope.correlation_id == v2.request_id]
    ingested = [p for p in v2_events if isinstance(p, AtomIngested)]
    assert {p.mime_type for p in ingested} == {
        "application/vnd.hartonomous.tensor",
        "application/vnd.hartonomous.model-manifest+json",
    }
    assert all(isinstance(p, AtomIngested | AtomReferenced) for p in v2_events)


async def test_the_same_version_twice_is_refused(platform: Platform) -> None:
    data = smollm2_gguf().read_bytes()
    await ingest(platform, data, "v1")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ingest(platform, data, "v1")
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS


@pytest.mark.parametrize(
    ("cut", "version", "reason"),
    [
        (40, "v1", "past the end of the file"),
        (None, "bad version!", "is not 1 to 64 letters"),
    ],
)
async def test_a_broken_file_or_header_leaves_nothing_behind(
    platform: Platform, cut: int | None, version: str, reason: str
) -> None:
    data = smollm2_gguf().read_bytes()[:cut] if cut else b"GGUF"
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await ingest(platform, data, version)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert reason in (refused.value.details() or "")
    assert await platform.events("models") == [] and await platform.events("atoms") == []
    rows = await platform.catalog_rows()
    assert rows["model_versions"] == [] and rows["refs"] == []


async def read_file(platform: Platform, version: str) -> bytes:
    request = ingest_pb2.GetModelVersionRequest(tenant_id="acme", name=NAME, version=version)
    return b"".join([m.data async for m in platform.stub.ReadModelFile(request)])


async def promote(platform: Platform, version: str) -> ingest_pb2.Model:
    request = ingest_pb2.PromoteModelVersionRequest(
        tenant_id="acme", name=NAME, version=version, reason=f"ship {version}"
    )
    reply: ingest_pb2.Model = await platform.stub.PromoteModelVersion(request)
    return reply


async def live_at(platform: Platform, moment: datetime | None = None) -> ingest_pb2.Model:
    request = ingest_pb2.GetModelRequest(tenant_id="acme", name=NAME)
    if moment is not None:
        request.as_of.FromDatetime(moment)
    reply: ingest_pb2.Model = await platform.stub.GetModel(request)
    return reply


async def test_versions_in_time_are_rebuilt_from_the_log_and_files_come_back_byte_exact(
    platform: Platform,
) -> None:
    v1_bytes = smollm2_gguf().read_bytes()
    v1 = await ingest(platform, v1_bytes, "v1")
    document = json.loads(await platform.blobs.get(v1.manifest_atom_id))
    tensor = document["tensors"][5]
    at = next(i for i, p in enumerate(document["parts"]) if p["atom"] == tensor["atom"])
    offset = sum(p["length"] for p in document["parts"][:at])
    v2_bytes = one_tensor_changed(v1_bytes, offset)
    v2 = await ingest(platform, v2_bytes, "v2")
    assert (await live_at(platform)).live_version == ""

    assert (await promote(platform, "v1")).live_version == "v1"
    between = datetime.now(UTC)
    await asyncio.sleep(0.01)
    assert (await promote(platform, "v2")).live_version == "v2"
    after = datetime.now(UTC)
    await promote(platform, "v2")  # already live: nothing appended
    assert len(await platform.events("models")) == 2 + 2

    async def answers() -> list[tuple[str, str]]:
        found = [await live_at(platform, moment) for moment in (between, after, None)]
        for model in found:
            assert hashlib.sha256(model.manifest_json.encode()).hexdigest() == (
                model.live.manifest_atom_id
            )
        return [(m.live_version, m.live.manifest_atom_id) for m in found]

    live = await answers()
    assert live == [
        ("v1", v1.manifest_atom_id),
        ("v2", v2.manifest_atom_id),
        ("v2", v2.manifest_atom_id),
    ]
    rollback = await promote(platform, "v1")
    assert [(p.version, p.previous_version) for p in rollback.promotions] == [
        ("v1", ""),
        ("v2", "v1"),
        ("v1", "v2"),
    ]
    live[-1] = ("v1", v1.manifest_atom_id)

    records = [r async for r in platform.event_log.replay("models", from_offset=0)]
    records += [r async for r in platform.event_log.replay("atoms", from_offset=0)]
    conn = await asyncpg.connect(platform.pg_url)
    try:
        await conn.execute("drop schema ingest cascade")
    finally:
        await conn.close()
    await platform.deps.catalog.setup()
    [consumer] = platform.harness.consumers
    await consumer.apply(records)
    assert await answers() == live

    diff = await platform.stub.DiffModelVersions(
        ingest_pb2.DiffModelVersionsRequest(
            tenant_id="acme", name=NAME, from_version="v1", to_version="v2"
        )
    )
    assert [c.tensor for c in diff.changed] == [tensor["name"]]
    assert (len(diff.added), len(diff.removed), diff.unchanged_tensors) == (0, 0, 271)

    assert await read_file(platform, "v1") == v1_bytes
    assert await read_file(platform, "v2") == v2_bytes


async def test_unknown_names_and_versions_are_not_found(platform: Platform) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await live_at(platform)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await promote(platform, "v9")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await read_file(platform, "v9")
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_a_failed_append_leaves_no_version_and_only_collectable_blobs(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def log_down(records: Sequence[Record], within: float | None = None) -> list[Position]:
        raise ConnectionError("the log went away")

    monkeypatch.setattr(platform.event_log, "append_atomic", log_down)
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await ingest(platform, smollm2_gguf().read_bytes(), "v1")
    assert got.value.code() == grpc.StatusCode.UNAVAILABLE  # an outage: retry later
    monkeypatch.undo()

    assert await platform.events("models") == [] and await platform.events("atoms") == []
    assert (await platform.catalog_rows())["model_versions"] == []
    assert len(platform.blob_files()) > 272  # every part and the manifest, never referenced
    report = await garbage_collect_orphans(platform.deps.catalog, platform.blobs, timedelta(0))
    assert report.blobs_removed > 272 and platform.blob_files() == []

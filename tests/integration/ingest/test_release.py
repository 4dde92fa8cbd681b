"""ReleaseAtom over a real gRPC server, log, Postgres and blob directory: the tenant's reference
ends (catalog, storage metering), the bytes stay while another tenant holds them and go with
the last holder, and the same bytes ingested later are stored and chunked again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import pytest

from hartonomous.events.payloads import AtomReleased
from hartonomous.sealing import is_sealed
from hartonomous.v1 import ingest_pb2
from tests.integration.ingest.conftest import Platform, catalog_rows, prose


def release(tenant_id: str, atom_id: str, **fields: str) -> ingest_pb2.ReleaseAtomRequest:
    return ingest_pb2.ReleaseAtomRequest(
        tenant_id=tenant_id, atom_id=atom_id, actor="key:k1", **fields
    )


async def holdings(platform: Platform) -> dict[str, int]:
    later = datetime.now(UTC) + timedelta(seconds=1)
    return {h.tenant_id: h.atoms for h in await platform.deps.catalog.holdings(later)}


async def test_the_last_holder_releasing_removes_the_bytes(platform: Platform) -> None:
    data = prose(1500).encode()
    first = await platform.ingest(data, tenant_id="acme", metadata_json='{"who": "acme"}')
    await platform.ingest(data, tenant_id="globex")
    stored = {first.atom_id, *first.chunk_atom_ids}
    assert len(stored) > 2
    assert await holdings(platform) == {"acme": 1, "globex": 1}

    reply = await platform.stub.ReleaseAtom(
        release("acme", first.atom_id, reason="asked to", request_id="req-9")
    )
    assert (reply.request_id, reply.blobs_removed) == ("req-9", 0)  # globex holds them
    *_, released = await platform.events("atoms")
    assert isinstance(released.payload, AtomReleased)
    sealed = released.payload.reason
    assert sealed is not None and is_sealed(sealed)  # the tenant's words travel sealed
    assert released.payload == AtomReleased(
        atom_id=first.atom_id, tenant_id="acme", actor="key:k1", reason=sealed
    )
    assert await platform.deps.sealer.open("acme", sealed) == "asked to"
    assert released.envelope.correlation_id == "req-9"
    for gone in (first.atom_id, first.chunk_atom_ids[0]):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await platform.stub.GetAtom(ingest_pb2.GetAtomRequest(tenant_id="acme", atom_id=gone))
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND
    assert await platform.read("globex", first.atom_id) == data
    assert await holdings(platform) == {"globex": 1}
    # A tombstone with nothing the tenant said about it (metadata, source).
    refs = (await catalog_rows(platform.pg_url))["refs"]
    [(_, _, metadata, source, *_, released_at)] = [r for r in refs if r[0] == "acme"]
    assert (metadata, source) == ("{}", None) and released_at is not None

    last = await platform.stub.ReleaseAtom(release("globex", first.atom_id))
    assert last.blobs_removed == len(stored)
    assert not any(platform.blobs.path(a).exists() for a in stored)
    assert await holdings(platform) == {}

    # The same bytes again: stored and chunked anew, readable again.
    again = await platform.ingest(data, tenant_id="acme")
    assert again.deduplicated is False
    assert list(again.chunk_atom_ids) == list(first.chunk_atom_ids)
    assert all(platform.blobs.path(a).is_file() for a in stored)
    assert await platform.read("acme", first.atom_id) == data


async def test_what_cannot_be_released_is_refused_and_nothing_changes(
    platform: Platform,
) -> None:
    text = await platform.ingest(prose(1500).encode(), tenant_id="acme")
    before = await catalog_rows(platform.pg_url)
    events = len(await platform.events("atoms"))
    cases = [
        (release("globex", text.atom_id), grpc.StatusCode.NOT_FOUND),  # another tenant's
        (release("acme", "0" * 64), grpc.StatusCode.NOT_FOUND),
        (release("acme", text.chunk_atom_ids[1]), grpc.StatusCode.FAILED_PRECONDITION),
        (release("acme", "not-an-id"), grpc.StatusCode.INVALID_ARGUMENT),
        (ingest_pb2.ReleaseAtomRequest(tenant_id="acme", atom_id=text.atom_id), None),
    ]
    for request, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await platform.stub.ReleaseAtom(request)
        assert caught.value.code() is (code or grpc.StatusCode.INVALID_ARGUMENT)
    assert await catalog_rows(platform.pg_url) == before
    assert len(await platform.events("atoms")) == events

    await platform.stub.ReleaseAtom(release("acme", text.atom_id))
    with pytest.raises(grpc.aio.AioRpcError) as again:
        await platform.stub.ReleaseAtom(release("acme", text.atom_id))
    assert again.value.code() is grpc.StatusCode.NOT_FOUND

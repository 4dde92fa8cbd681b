"""EraseTenant over a real gRPC server, log, Postgres, key store and blob directory: every
document of the tenant is released, its data key destroyed, and from then on nothing it wrote
reads anywhere: not in the live catalog, not in one rebuilt from the log in any order, not in
the log itself. Another tenant holding the same bytes keeps them."""

from __future__ import annotations

import grpc
import pytest

from hartonomous.events.payloads import AtomIngested, AtomReferenced, TenantErased
from hartonomous.v1 import ingest_pb2
from tests.integration.ingest.conftest import Platform, prose, rebuilt_catalog

PERSONAL = "Jane Roe"


def erase(tenant_id: str = "acme") -> ingest_pb2.EraseTenantRequest:
    return ingest_pb2.EraseTenantRequest(tenant_id=tenant_id, actor="key:admin1")


async def test_an_erased_tenant_leaves_nothing_readable(platform: Platform) -> None:
    own, shared = prose(700, seed=3).encode(), prose(900, seed=4).encode()
    mine = await platform.ingest(
        own, tenant_id="acme", metadata_json=f'{{"owner": "{PERSONAL}"}}', source_uri="jane.txt"
    )
    both = await platform.ingest(shared, tenant_id="acme", metadata_json='{"owner": "Jane Roe"}')
    await platform.ingest(shared, tenant_id="globex", metadata_json='{"team": "b"}')

    reply = await platform.stub.EraseTenant(erase())
    own_blobs = {mine.atom_id, *mine.chunk_atom_ids}
    assert (reply.documents_released, reply.blobs_removed) == (2, len(own_blobs))
    assert not any(platform.blobs.path(a).exists() for a in own_blobs)
    assert await platform.read("globex", both.atom_id) == shared  # globex keeps its copy
    globex = await platform.stub.GetAtom(
        ingest_pb2.GetAtomRequest(tenant_id="globex", atom_id=both.atom_id)
    )
    assert globex.metadata_json == '{"team":"b"}'
    for atom_id in (mine.atom_id, both.atom_id):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await platform.stub.GetAtom(
                ingest_pb2.GetAtomRequest(tenant_id="acme", atom_id=atom_id)
            )
        assert caught.value.code() is grpc.StatusCode.NOT_FOUND

    # The catalog holds nothing of acme, not even tombstones.
    live = await platform.catalog_rows()
    assert not [row for rows in live.values() for row in rows if "acme" in row]

    # The log: the erasure recorded last; what acme wrote is there only sealed, and opens no more.
    events = await platform.events("atoms")
    assert events[-1].payload == TenantErased(
        tenant_id="acme", actor="key:admin1", documents_released=2
    )
    assert PERSONAL not in repr([e.payload for e in events])
    acme = [
        e.payload
        for e in events
        if isinstance(e.payload, AtomIngested | AtomReferenced) and e.payload.tenant_id == "acme"
    ]
    assert len(acme) == 2
    for payload in acme:
        assert await platform.deps.sealer.open("acme", payload.metadata_json) is None

    # A catalog rebuilt from the log, in reverse order, holds nothing of acme either.
    assert await rebuilt_catalog(reversed(events)) == live


async def test_an_erased_tenant_can_neither_ingest_nor_be_erased_twice_harmfully(
    platform: Platform,
) -> None:
    await platform.ingest(b"a note of acme's", tenant_id="acme")
    assert (await platform.stub.EraseTenant(erase())).documents_released == 1
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await platform.ingest(b"written after the erasure", tenant_id="acme")
    assert caught.value.code() is grpc.StatusCode.FAILED_PRECONDITION
    assert "erased" in (caught.value.details() or "")
    again = await platform.stub.EraseTenant(erase())
    assert (again.documents_released, again.blobs_removed) == (0, 0)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await platform.stub.EraseTenant(ingest_pb2.EraseTenantRequest(tenant_id="acme"))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT  # who erases is required

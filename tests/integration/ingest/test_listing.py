"""ListAtoms over a real gRPC server, log and Postgres: a tenant's documents in id order, page
by page, without chunks, released documents or other tenants' atoms."""

from __future__ import annotations

import grpc
import pytest

from hartonomous.v1 import ingest_pb2
from tests.integration.ingest.conftest import PNG, Platform, prose


async def test_the_pages_hold_the_tenants_documents_once_each(platform: Platform) -> None:
    texts = [await platform.ingest(prose(1500 + i).encode(), tenant_id="acme") for i in range(4)]
    image = await platform.ingest(PNG, tenant_id="acme", metadata_json='{"kind": "logo"}')
    await platform.ingest(b"globex's own text, not acme's", tenant_id="globex")
    gone = texts.pop()
    await platform.stub.ReleaseAtom(
        ingest_pb2.ReleaseAtomRequest(tenant_id="acme", atom_id=gone.atom_id, actor="key:k")
    )

    seen, after, pages = [], "", 0
    while True:
        page = await platform.stub.ListAtoms(
            ingest_pb2.ListAtomsRequest(tenant_id="acme", after_atom_id=after, limit=2)
        )
        seen += list(page.atoms)
        pages += 1
        if not page.next_after:
            break
        after = page.next_after
    expected = sorted([*(t.atom_id for t in texts), image.atom_id])
    assert [a.atom_id for a in seen] == expected
    assert pages == 2 + (len(expected) % 2 == 0)  # a full last page ends with an empty one
    by_id = {a.atom_id: a for a in seen}
    assert by_id[image.atom_id].metadata_json == '{"kind":"logo"}'
    assert [c.atom_id for c in by_id[texts[0].atom_id].chunks] == list(texts[0].chunk_atom_ids)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await platform.stub.ListAtoms(ingest_pb2.ListAtomsRequest(tenant_id="acme", limit=5000))
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT

"""The provenance service end to end on a real embedded log: the events an ingest -> chunk ->
embed flow appends become a graph that Explain and Lineage answer from, for one tenant at a
time, and that a replay of the log reproduces exactly."""

from __future__ import annotations

import grpc
import pytest

from hartonomous.eventlog.port import Record
from hartonomous.v1 import provenance_pb2 as pb
from services.provenance import audit
from tests.integration.provenance.conftest import Provenance
from tests.support.harness import CODEC
from tests.support.provenance_flow import MODEL_VERSION, Flow, ingest_flow, reference_flow

TEXT = "Lineage you can ask: every chunk knows its document and its model."


async def ingest(provenance: Provenance, flow: Flow) -> None:
    """Appended as the services do: the ingest's events in one transaction, inference's in
    another."""
    ingest_events = [k for k in flow.events if k.event.envelope.produced_by == "ingest"]
    inference_events = [k for k in flow.events if k.event.envelope.produced_by == "inference"]
    await provenance.append(ingest_events)
    if inference_events:
        await provenance.append(inference_events)


async def test_explain_names_the_document_the_chunk_and_the_model_version(
    provenance: Provenance,
) -> None:
    acme = ingest_flow("acme", TEXT, "handbook/lineage.md", "req-42")
    await ingest(provenance, acme)
    await provenance.settled()

    reply = await provenance.stub.Explain(
        pb.ExplainRequest(tenant_id="acme", node_id=acme.chunks[1])
    )
    (doc,) = reply.documents
    assert (doc.atom_id, doc.source_uri, doc.held_as) == (
        acme.document,
        "handbook/lineage.md",
        "OWNS",
    )
    assert (doc.request_id, doc.chunk.index, doc.chunk.start_char) == ("req-42", 1, len(TEXT) // 2)
    assert doc.chunk.end_byte == len(TEXT.encode())
    (embedding,) = reply.embeddings
    assert embedding.model_version == MODEL_VERSION
    assert embedding.computed.topic == "embeddings" and embedding.correlation_id == "req-42"
    assert [s.event_type for s in reply.chain] == [
        "EmbeddingComputed",
        "AtomChunked",
        "AtomIngested",
    ]
    for needle in ("handbook/lineage.md", "chunk #1", MODEL_VERSION, "req-42", acme.document):
        assert needle in reply.text, reply.text


async def test_lineage_is_bounded_and_confined_to_the_tenant(provenance: Provenance) -> None:
    acme = ingest_flow("acme", TEXT, "lineage.md", "req-1")
    globex = reference_flow(acme, "globex", "mirror/lineage.md", "req-2")
    await ingest(provenance, acme)
    await ingest(provenance, globex)
    await provenance.settled()
    embedding = f"Embedding:{acme.chunks[0]}/{MODEL_VERSION}"

    up = await provenance.stub.Lineage(
        pb.LineageRequest(
            tenant_id="acme", node_id=embedding, direction=pb.DIRECTION_UPSTREAM, depth=4
        )
    )
    ids = {n.id for n in up.nodes}
    assert up.root_id == embedding and up.nodes[0].id == embedding
    assert {f"Atom:{acme.document}", f"ModelVersion:{MODEL_VERSION}", "Tenant:acme"} <= ids
    assert all(e.source_id in ids and e.target_id in ids for e in up.edges)
    chunk = next(n for n in up.nodes if n.label == "Chunk")
    assert chunk.properties["index"] == 0 and chunk.source.topic == "atoms"

    theirs = await provenance.stub.Lineage(
        pb.LineageRequest(tenant_id="globex", node_id=embedding, depth=4)
    )
    seen = {n.id for n in theirs.nodes}
    assert "Tenant:globex" in seen and "Tenant:acme" not in seen
    assert not any(
        n.source.event_id for n in theirs.nodes if n.label == "Embedding"
    )  # acme's event

    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await provenance.stub.Lineage(pb.LineageRequest(tenant_id="initech", node_id=embedding))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as bad:
        await provenance.stub.Lineage(
            pb.LineageRequest(tenant_id="acme", node_id=embedding, depth=11)
        )
    assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_the_live_graph_equals_a_replay_even_with_redeliveries_and_garbage(
    provenance: Provenance,
) -> None:
    acme = ingest_flow("acme", TEXT, "a.md", "req-1")
    await ingest(provenance, acme)
    # A consumer re-delivery appends the same events (same ids) again; garbage is dead-lettered.
    await provenance.append([k for k in acme.events if k.topic == "embeddings"])
    await provenance.event_log.append([Record("atoms", b"junk", b"not avro", {})])
    await ingest(provenance, ingest_flow("initech", "Another text entirely.", "b.md", "req-2"))
    await provenance.settled()

    live = await provenance.service.store.fingerprint()
    # Appended after the live fingerprint was taken: the audit compares the prefix it reflects.
    later = ingest_flow("globex", "Written while the audit runs.", "c.md", "req-3")
    await ingest(provenance, later)
    report = await audit.verify(provenance.event_log, CODEC, live)
    assert report.ok, report.differences
    assert report.replayed.rejected == 1
    assert report.replayed.ahead == len(later.events)
    assert report.rebuilt.digest == live.digest

    await provenance.settled()
    current = await provenance.service.store.fingerprint()
    wire = await provenance.stub.Fingerprint(pb.FingerprintRequest())
    assert wire.digest == current.digest and dict(wire.nodes) == current.nodes

    partial = await provenance.service.store.fingerprint(["embeddings"])
    assert (await audit.verify(provenance.event_log, CODEC, partial, ["embeddings"])).ok

"""The GraphStore contract runs once per adapter: embedded (ladybug in a temporary file) and
Neo4j (the real server deploy/local/neo4j.sh runs, each test in a label namespace of its own).

The oracle for what a store must hold is pure: canonical.fingerprint over the winning statement of
every node and edge (domain.winning_nodes/edges). Both adapters equal it, so they equal each
other, byte for byte of the canonical hash."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hartonomous.eventlog.port import StoredRecord
from hartonomous.events import AvroCodec, decode_event
from services.provenance import queries
from services.provenance.canonical import Fingerprint, fingerprint
from services.provenance.domain import (
    Direction,
    Edge,
    Facts,
    Label,
    Node,
    NotFound,
    Origin,
    Rel,
    atom_uid,
    node_uid,
    winning_edges,
    winning_nodes,
)
from services.provenance.graph.embedded import EmbeddedGraphStore
from services.provenance.graph.port import GraphStore
from services.provenance.handlers import positions_after, project
from services.provenance.queries import TensorModel
from tests.support.provenance_flow import (
    KNOB,
    MODEL_VERSION,
    Flow,
    generation,
    ingest_flow,
    model_history,
    ooda_cycle,
    reference_flow,
    stored,
)

CODEC = AvroCodec()


@pytest.fixture(scope="session")
def neo4j_namespace() -> Iterator[str]:
    """One label namespace for the session, so Neo4j plans each query once; dropped at the end."""
    from services.provenance.graph.neo4j import Neo4jGraphStore
    from tests.support.neo4j_server import neo4j_auth, neo4j_uri

    namespace = f"Test{uuid.uuid4().hex[:12]}"
    yield namespace

    async def drop() -> None:
        store = Neo4jGraphStore(neo4j_uri(), *neo4j_auth(), namespace=namespace)
        await store.open()
        await store.drop()
        await store.close()

    asyncio.run(drop())


@pytest.fixture(params=["embedded", "neo4j"])
async def graph(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[GraphStore]:
    store: GraphStore
    if request.param == "embedded":
        store = EmbeddedGraphStore(tmp_path / "graph" / "test.lbug")
    else:
        from services.provenance.graph.neo4j import Neo4jGraphStore
        from tests.support.neo4j_server import neo4j_auth, neo4j_uri

        namespace = request.getfixturevalue("neo4j_namespace")
        store = Neo4jGraphStore(neo4j_uri(), *neo4j_auth(), namespace=namespace)
    await store.open()
    await store.clear()
    try:
        yield store
    finally:
        await store.close()


def facts(records: list[StoredRecord]) -> Facts:
    out = Facts()
    for record in records:
        out.extend(project(decode_event(CODEC, record)))
    return out


def oracle(all_facts: Facts) -> Fingerprint:
    return fingerprint(winning_nodes(all_facts.nodes), winning_edges(all_facts.edges))


async def apply_records(store: GraphStore, records: list[StoredRecord]) -> None:
    await store.apply(facts(records), positions_after(records))


def two_tenants() -> tuple[Flow, Flow, Flow]:
    """acme ingests a text, globex uploads the same bytes later, initech has its own text."""
    acme = ingest_flow(
        "acme", "The quarterly report says revenue grew in every region.", "q3.txt", "req-acme"
    )
    globex = reference_flow(acme, "globex", "copy-of-report.txt", "req-globex")
    initech = ingest_flow(
        "initech", "Initech's TPS report cover sheet procedure.", "tps.txt", "req-initech"
    )
    return acme, globex, initech


def all_records(*flows: Flow) -> list[StoredRecord]:
    return stored(CODEC, [k for flow in flows for k in flow.events])


async def test_what_is_applied_reads_back_exactly(graph: GraphStore) -> None:
    origin = Origin("t", 2, 7, "e-1", "acme", "2026-01-02T03:04:05+00:00")
    node = Node(
        Label.ATOM, "a" * 64, "", "a" * 64, {"s": "é x", "i": 2**40, "f": 0.25, "b": True}, origin
    )
    other = Node(Label.TENANT, "acme", "acme", "", {}, origin, defines=False)
    edge = Edge(Rel.OWNS, other.uid, node.uid, "acme", {"source_uri": "x.txt"}, origin)
    await graph.apply(Facts([node, other], [edge]), {("t", 2): 8})

    assert await graph.nodes([node.uid, other.uid, "Atom:missing"]) == {
        node.uid: node,
        other.uid: other,
    }
    assert await graph.edges([other.uid], outgoing=True, types=[Rel.OWNS], limit=10) == [edge]
    assert await graph.edges([node.uid], outgoing=False, types=[Rel.OWNS], limit=10) == [edge]
    assert await graph.edges([node.uid], outgoing=True, types=[Rel.OWNS], limit=10) == []
    assert await graph.positions() == {("t", 2): 8}
    assert await graph.counts() == ({"Atom": 1, "Tenant": 1}, {"OWNS": 1})
    nodes, edges, positions = await graph.dump()
    assert positions == {("t", 2): 8}
    assert sorted(nodes, key=lambda n: n.uid) == sorted([node, other], key=lambda n: n.uid)
    assert edges == [edge]


async def test_the_graph_equals_the_oracle_whatever_the_order_or_repetition(
    graph: GraphStore,
) -> None:
    records = all_records(*two_tenants())
    expected = oracle(facts(records))

    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    for i in range(0, len(shuffled), 3):  # small batches, out of order
        await apply_records(graph, shuffled[i : i + 3])
    first = await graph.fingerprint()
    assert (first.nodes, first.edges, first.digest) == (
        expected.nodes,
        expected.edges,
        expected.digest,
    )

    await apply_records(graph, records)  # a full replay on top changes nothing
    again = await graph.fingerprint()
    assert again == first
    assert again.positions == positions_after(records)


async def test_a_definition_wins_over_mentions_and_an_earlier_statement_over_later_ones(
    graph: GraphStore,
) -> None:
    late = Origin("atoms", 0, 9, "e-9", "acme", "2026-01-01T00:00:09+00:00")
    early = Origin("atoms", 0, 3, "e-3", "acme", "2026-01-01T00:00:03+00:00")
    mention = Node(Label.ATOM, "b" * 64, "", "b" * 64, {}, early, defines=False)
    defined_late = Node(Label.ATOM, "b" * 64, "", "b" * 64, {"size_bytes": 9}, late)
    defined_early = Node(Label.ATOM, "b" * 64, "", "b" * 64, {"size_bytes": 3}, early)
    for node in (mention, defined_late, defined_early, defined_late, mention):
        await graph.apply(Facts([node], []), {})
    assert (await graph.nodes([mention.uid]))[mention.uid] == defined_early


async def test_positions_never_move_back(graph: GraphStore) -> None:
    await graph.apply(Facts(), {("atoms", 0): 10, ("atoms", 1): 4})
    await graph.apply(Facts(), {("atoms", 0): 6, ("usage", 0): 1})
    assert await graph.positions() == {("atoms", 0): 10, ("atoms", 1): 4, ("usage", 0): 1}


async def test_edges_are_limited_and_typed(graph: GraphStore) -> None:
    (acme, _, _) = two_tenants()
    await apply_records(graph, all_records(acme))
    document = atom_uid(acme.document)
    chunks = await graph.edges([document], outgoing=False, types=[Rel.CHUNK_OF], limit=10)
    assert len(chunks) == 2 and {e.type for e in chunks} == {Rel.CHUNK_OF}
    assert len(await graph.edges([document], outgoing=False, types=[Rel.CHUNK_OF], limit=1)) == 1


async def test_held_follows_holdings_and_the_parts_of_held_atoms(graph: GraphStore) -> None:
    acme, globex, initech = two_tenants()
    await apply_records(graph, all_records(acme, globex, initech))
    acme_atoms = [acme.document, *acme.chunks]
    assert await graph.held("acme", [*acme_atoms, initech.document]) == set(acme_atoms)
    assert await graph.held("globex", acme_atoms) == set(acme_atoms)  # by its reference
    assert await graph.held("initech", acme_atoms) == set()
    assert await graph.held("nobody", [initech.document]) == set()


async def test_counts_and_clear(graph: GraphStore) -> None:
    records = all_records(*two_tenants())
    await apply_records(graph, records)
    expected = oracle(facts(records))
    assert await graph.counts() == (expected.nodes, expected.edges)
    await graph.clear()
    assert await graph.counts() == ({}, {})
    assert await graph.positions() == {}


async def test_a_forged_statement_changes_the_fingerprint(graph: GraphStore) -> None:
    acme, _, _ = two_tenants()
    await apply_records(graph, all_records(acme))
    honest = await graph.fingerprint()
    # Sorts before any real record, so it wins the merge like a rewritten history would.
    forged_origin = Origin("a", 0, 0, "forged", "acme", "2000-01-01T00:00:00+00:00")
    forged = Node(Label.ATOM, acme.document, "", acme.document, {"size_bytes": 1}, forged_origin)
    await graph.apply(Facts([forged], []), {})
    tampered = await graph.fingerprint()
    assert tampered.nodes == honest.nodes and tampered.digest != honest.digest
    assert any("content hash" in d for d in tampered.differences(honest))


async def test_a_dump_is_whole_while_writes_keep_landing(graph: GraphStore) -> None:
    """A live platform keeps projecting telemetry and searches while an audit reads the graph:
    each dump's positions must describe exactly the statements it holds, without waiting for a
    quiet moment that never comes."""
    acme, _, _ = two_tenants()
    records = all_records(acme)
    topics = sorted({r.topic for r in records})
    await apply_records(graph, records)
    expected = await graph.fingerprint(topics)
    writing, written, wrote = True, 0, asyncio.Event()

    async def writer() -> None:  # one new node per write, so a count tells what was read
        nonlocal written
        while writing:
            origin = Origin("live", 0, written, f"e-{written}", "t", "2026-01-01T00:00:00+00:00")
            node = Node(Label.TENANT, f"t{written}", f"t{written}", "", {}, origin)
            await graph.apply(Facts([node], []), {("live", 0): written + 1})
            written += 1
            wrote.set()

    task = asyncio.create_task(writer())
    try:
        for _ in range(5):
            wrote.clear()
            await wrote.wait()  # every dump starts with the writer under way
            nodes, _, positions = await graph.dump()
            live = sum(1 for n in nodes if n.origin.topic == "live")
            assert live == positions.get(("live", 0), 0)
            assert await graph.fingerprint(topics) == expected
    finally:
        writing = False
        await task


# ---------------------------------------------------------------------------------------
# Lineage and explain run over the port, so they are part of every adapter's contract.


async def test_lineage_walks_upstream_and_downstream_within_depth_and_limit(
    graph: GraphStore,
) -> None:
    acme, _, _ = two_tenants()
    await apply_records(graph, all_records(acme))
    embedding = node_uid(Label.EMBEDDING, f"{acme.chunks[0]}/{MODEL_VERSION}")

    up = await queries.lineage(graph, "acme", embedding, Direction.UPSTREAM, 3, 100)
    labels = {n.label for n in up.nodes}
    assert up.root.uid == embedding and up.nodes[0].uid == embedding
    assert {Label.ATOM, Label.CHUNK, Label.MODEL_VERSION, Label.MODEL, Label.EVENT} <= labels
    assert atom_uid(acme.document) in {n.uid for n in up.nodes}  # chunk -> its document
    assert not up.truncated
    assert all(
        e.source in {n.uid for n in up.nodes} and e.target in {n.uid for n in up.nodes}
        for e in up.edges
    )

    shallow = await queries.lineage(graph, "acme", embedding, Direction.UPSTREAM, 1, 100)
    assert atom_uid(acme.document) not in {n.uid for n in shallow.nodes}

    small = await queries.lineage(graph, "acme", embedding, Direction.UPSTREAM, 3, 3)
    assert len(small.nodes) == 3 and small.truncated

    down = await queries.lineage(graph, "acme", acme.document, Direction.DOWNSTREAM, 2, 100)
    downstream = {n.uid for n in down.nodes}
    assert node_uid(Label.EMBEDDING, f"{acme.document}/{MODEL_VERSION}") in downstream
    assert {n.label for n in down.nodes} >= {Label.CHUNK, Label.EMBEDDING}


async def test_a_tenant_never_sees_another_tenants_nodes(graph: GraphStore) -> None:
    acme, globex, initech = two_tenants()
    await apply_records(graph, all_records(acme, globex, initech))
    embedding = node_uid(Label.EMBEDDING, f"{acme.chunks[0]}/{MODEL_VERSION}")

    with pytest.raises(NotFound):
        await queries.lineage(graph, "initech", embedding, Direction.UPSTREAM, 3, 100)
    with pytest.raises(NotFound):
        await queries.explain(graph, "initech", acme.chunks[0])

    # The model version is public, but walking down from it shows each tenant only the
    # embeddings of content it holds.
    version = node_uid(Label.MODEL_VERSION, MODEL_VERSION)
    for tenant, mine, theirs in (("initech", initech, acme), ("acme", acme, initech)):
        down = await queries.lineage(graph, tenant, version, Direction.DOWNSTREAM, 4, 1000)
        seen = {n.uid for n in down.nodes}
        assert node_uid(Label.EMBEDDING, f"{mine.document}/{MODEL_VERSION}") in seen
        assert not any(n.key.startswith(theirs.document) for n in down.nodes)
        assert {n.tenant_id for n in down.nodes} <= {"", tenant}
        assert {e.tenant_id for e in down.edges} <= {"", tenant}

    # globex referenced acme's bytes: it sees the shared content, never acme's own facts.
    up = await queries.lineage(graph, "globex", embedding, Direction.UPSTREAM, 6, 1000)
    assert atom_uid(acme.document) in {n.uid for n in up.nodes}
    assert {n.tenant_id for n in up.nodes} <= {"", "globex"}
    assert {e.tenant_id for e in up.edges} <= {"", "globex"}
    assert Rel.OWNS not in {e.type for e in up.edges}


async def test_explain_names_the_document_the_chunk_and_the_model_version(
    graph: GraphStore,
) -> None:
    acme, globex, _ = two_tenants()
    await apply_records(graph, all_records(acme, globex))

    found = await queries.explain(graph, "acme", acme.chunks[1])
    (doc,) = found.documents
    assert (doc.atom_id, doc.holding.props["source_uri"], doc.holding.type) == (
        acme.document,
        "q3.txt",
        Rel.OWNS,
    )
    assert doc.chunk is not None and doc.chunk.props["index"] == 1
    (emb,) = found.embeddings
    assert emb.node.props["model_version"] == MODEL_VERSION and emb.event is not None
    assert [e.props["event_type"] for e in found.chain] == [
        "EmbeddingComputed",
        "AtomChunked",
        "AtomIngested",
    ]
    assert found.chain[-1].props["correlation_id"] == "req-acme"

    theirs = await queries.explain(graph, "globex", acme.chunks[1])
    (doc,) = theirs.documents
    assert (doc.holding.props["source_uri"], doc.holding.type) == (
        "copy-of-report.txt",
        Rel.REFERENCED,
    )
    assert doc.holding.props["request_id"] == "req-globex"
    (emb,) = theirs.embeddings
    assert emb.node.props["model_version"] == MODEL_VERSION
    assert emb.event is None  # computed for acme: its event is not globex's to see
    assert [e.props["event_type"] for e in theirs.chain] == ["AtomReferenced"]


async def test_model_versions_share_tensor_atoms_and_their_names_stay_their_tenants(
    graph: GraphStore,
) -> None:
    history = model_history()
    records = stored(CODEC, history.events)
    await apply_records(graph, records)
    got, expected = await graph.fingerprint(), oracle(facts(records))
    assert (got.nodes, got.edges, got.digest) == (expected.nodes, expected.edges, expected.digest)

    v1, v2, theirs = history.v1, history.v2, history.theirs
    assert await queries.tensor_models(graph, "acme", history.shared) == [
        TensorModel("tiny-llm", "v1", v1.manifest, ("embed",)),
        TensorModel("tiny-llm", "v2", v2.manifest, ("embed",)),
    ]
    assert await queries.tensor_models(graph, "acme", history.changed) == [
        TensorModel("tiny-llm", "v2", v2.manifest, ("head",))
    ]
    # globex holds the shared bytes in a model of its own: it sees that one, never acme's.
    assert await queries.tensor_models(graph, "globex", history.shared) == [
        TensorModel("globex-lm", "1.0", theirs.manifest, ("embed",))
    ]
    with pytest.raises(NotFound):
        await queries.tensor_models(graph, "globex", history.changed)


async def test_a_generation_explains_its_input_model_version_and_parameters(
    graph: GraphStore,
) -> None:
    history = model_history()
    answer = generation(history.v2, "acme", "Which head?", "The retrained one.")
    unstored = generation(history.v1, "acme", "And before?", "The first.", store_input=False)
    records = stored(CODEC, [*history.events, *answer.events, *unstored.events])
    shuffled = records[:]
    random.Random(7).shuffle(shuffled)
    for i in range(0, len(shuffled), 5):  # small batches, out of order
        await apply_records(graph, shuffled[i : i + 5])
    got, expected = await graph.fingerprint(), oracle(facts(records))
    assert (got.nodes, got.edges, got.digest) == (expected.nodes, expected.edges, expected.digest)

    found = await queries.explain(graph, "acme", answer.generation_id)
    assert found.generation is not None
    gen = found.generation
    assert gen.node.props["model_version"] == history.v2.manifest
    assert (gen.names, gen.tensors) == ([("tiny-llm", "v2")], 3)
    assert (gen.node.props["temperature"], gen.node.props["stop"]) == (0.7, ["\n\n", "User:"])
    assert [d.atom_id for d in found.documents] == [answer.input_atom, answer.output_atom]
    assert [e.props["event_type"] for e in found.chain] == ["InferencePerformed"]

    bare = await queries.explain(graph, "acme", unstored.generation_id)
    assert bare.generation is not None and bare.generation.names == [("tiny-llm", "v1")]
    assert [d.atom_id for d in bare.documents] == [unstored.output_atom]
    with pytest.raises(NotFound):
        await queries.explain(graph, "globex", answer.generation_id)


# ---------------------------------------------------------------------------------------
# The autonomous loop: a cycle is a chain with its numbers on either engine, and the setting it
# changed leads back to the observation that started it.


async def test_an_ooda_cycle_is_a_chain_with_its_numbers_from_the_change_to_the_observation(
    graph: GraphStore,
) -> None:
    cycle = ooda_cycle()
    records = stored(CODEC, [*cycle.windows, *cycle.events])
    expected = oracle(facts(records))
    shuffled = records[:]
    random.Random(11).shuffle(shuffled)
    for i in range(0, len(shuffled), 4):  # small batches, out of order
        await apply_records(graph, shuffled[i : i + 4])
    await apply_records(graph, records)  # and a full replay on top
    got = await graph.fingerprint()
    assert (got.nodes, got.edges, got.digest) == (expected.nodes, expected.edges, expected.digest)

    def uid(label: Label, key: str) -> str:
        return node_uid(label, key)

    observation, chosen, decision, action, change, outcome, prior, rollback = (
        uid(Label.OBSERVATION, cycle.observation),
        uid(Label.HYPOTHESIS, cycle.chosen),
        uid(Label.DECISION, cycle.decision),
        uid(Label.ACTION, cycle.action),
        uid(Label.CONFIG_CHANGE, cycle.change),
        uid(Label.OUTCOME, cycle.outcome),
        uid(Label.PRIOR, cycle.prior),
        uid(Label.ACTION, cycle.rollback),
    )
    nodes = await graph.nodes([observation, chosen, decision, action, change, outcome, prior])
    p = {u: n.props for u, n in nodes.items()}
    assert p[observation]["windows"] == [w.event.envelope.event_id for w in cycle.windows]
    assert (p[observation]["baseline"], p[observation]["current"]) == (12.5, 20.0)
    assert (p[chosen]["proposed_value"], p[chosen]["prior_alpha"]) == ("2", 3.0)
    assert (p[decision]["status"], p[decision]["drawn"]) == ("pending", 0.71)
    assert (p[action]["new_value"], p[action]["actor"]) == ("2", f"ooda:{cycle.decision}")
    assert (p[change]["config_key"], p[change]["new_value"]) == (KNOB, "2")
    assert (p[outcome]["verdict"], p[outcome]["p_value"]) == ("improved", 0.0031)
    assert p[outcome]["guardrail_breaches"] == []
    assert (p[prior]["alpha"], p[prior]["beta"]) == (4.0, 2.0)
    assert {n.tenant_id for n in nodes.values()} == {"platform"}

    def out(edges: list[Edge]) -> set[tuple[str, str, str]]:
        return {e.ident for e in edges}

    chain = {
        (Rel.PROPOSED_FOR, chosen, observation),
        (Rel.CHOSE, decision, chosen),
        (Rel.EXECUTES, action, decision),
        (Rel.CHANGED, action, change),
        (Rel.EVALUATES, outcome, action),
        (Rel.LEARNED_FROM, prior, outcome),
        (Rel.ROLLS_BACK, rollback, action),
        (Rel.CHANGED, rollback, uid(Label.CONFIG_CHANGE, cycle.rollback_change)),
    }
    sources = [chosen, decision, action, outcome, prior, rollback]
    assert chain <= out(await graph.edges(sources, outgoing=True, types=list(Rel), limit=100))
    resolved = await graph.edges(
        [decision, rollback], outgoing=True, types=[Rel.RESOLVED_BY], limit=10
    )
    by_source = {e.source: e for e in resolved}
    assert by_source[decision].target == uid(Label.EVENT, cycle.resolution)
    assert by_source[decision].props == {
        "status": "approved",
        "actor": "user:k1",
        "reason": "the queue is the bottleneck",
        "resolved_at": "2026-03-01T12:05:00+00:00",
    }
    assert by_source[rollback].props["missing"] == ["host-2"]

    why = await queries.lineage(graph, "platform", change, Direction.UPSTREAM, 4, 1000)
    seen = {n.uid for n in why.nodes}
    assert {action, decision, chosen, observation, uid(Label.EVENT, cycle.resolution)} <= seen
    assert uid(Label.HYPOTHESIS, cycle.passed_over) not in seen  # not a cause of the change
    assert not any(n.key in p[observation]["windows"] for n in why.nodes)
    with pytest.raises(NotFound):
        await queries.lineage(graph, "acme", change, Direction.UPSTREAM, 4, 1000)

"""The event types beyond the ingest flow map onto the graph as the README's table says, and
what cannot map is a poison event (dead-lettered live, skipped by an audit's replay)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hartonomous.eventlog.port import StoredRecord
from hartonomous.events import AvroCodec, Envelope, Event, decode_event, encode_event
from hartonomous.events.payloads import (
    AtomChunked,
    ConfigChanged,
    GaugeSample,
    OperationWindow,
    Payload,
    TelemetryRecorded,
    TenantErased,
)
from hartonomous.runtime.projection import PoisonEvent
from services.provenance import queries
from services.provenance.domain import (
    Direction,
    Facts,
    Label,
    NotFound,
    Rel,
    Value,
    node_uid,
    winning_edges,
    winning_nodes,
)
from services.provenance.graph.embedded import EmbeddedGraphStore
from services.provenance.handlers import model_key, positions_after, project
from services.search.domain import Hit, Mode, SearchQuery
from services.search.metering import receipt_payload, usage_payload
from tests.support.provenance_flow import (
    MODEL_VERSION,
    Keyed,
    generation,
    ingest_flow,
    model_history,
    sha256,
    stored,
)

CODEC = AvroCodec()


def one(topic: str, event: Event[Payload], key: str = "k") -> StoredRecord:
    record = encode_event(CODEC, event, topic, key)
    return StoredRecord(topic, 0, 5, datetime.now(UTC), record.key, record.value, record.headers)


def test_a_config_change_is_a_node_of_the_tenant_that_made_it() -> None:
    env = Envelope.new("ConfigChanged", "platform", "ooda.act")
    payload = ConfigChanged(
        key="inference.batch.max_wait_ms",
        old_value="5",
        new_value="2",
        scope="canary",
        reason="p95 latency over budget",
        actor="ooda.act",
    )
    facts = project(_decoded("control", Event(env, payload)))
    (change,) = [n for n in facts.nodes if n.label is Label.CONFIG_CHANGE]
    assert change.tenant_id == "platform" and change.key == env.event_id
    assert change.props["config_key"] == "inference.batch.max_wait_ms"
    assert change.props["config_scope"] == "canary" and change.props["old_value"] == "5"
    assert (Rel.RECORDED_BY, change.uid, node_uid(Label.EVENT, env.event_id)) in {
        e.ident for e in facts.edges
    }


def test_an_erasure_is_an_edge_from_the_tenant_to_its_event() -> None:
    env = Envelope.new("TenantErased", "acme", "ingest")
    payload = TenantErased(tenant_id="acme", actor="key:admin1", documents_released=3)
    facts = project(_decoded("atoms", Event(env, payload)))
    (erased,) = [e for e in facts.edges if e.type is Rel.ERASED]
    assert (erased.source, erased.target) == (
        node_uid(Label.TENANT, "acme"),
        node_uid(Label.EVENT, env.event_id),
    )
    assert erased.tenant_id == "acme"
    assert erased.props == {"actor": "key:admin1", "documents_released": 3}


def test_a_telemetry_window_is_no_node_of_the_graph() -> None:
    env = Envelope.new("TelemetryRecorded", "platform", "inference")
    window = datetime.now(UTC)
    payload = TelemetryRecorded(
        service="inference",
        instance="host-1-abc",
        window_start=window,
        window_end=window,
        operations=[OperationWindow(operation="Embed", requests=3, errors=0, p95_ms=12.0)],
        gauges=[GaugeSample(name="inference_queue_depth", value=2.0)],
        tunables={"inference.batch.max_wait_ms": "5"},
    )
    facts = project(_decoded("telemetry", Event(env, payload)))
    assert (facts.nodes, facts.edges) == ([], [])


def test_a_model_version_is_shared_content_and_its_names_the_tenants_own() -> None:
    history = model_history()
    v1, v2 = history.v1, history.v2
    facts = Facts()
    for record in stored(CODEC, history.events):
        facts.extend(project(decode_event(CODEC, record)))
    nodes = {n.uid: n for n in winning_nodes(facts.nodes)}
    edges = {e.ident: e for e in winning_edges(facts.edges)}

    version = nodes[node_uid(Label.MODEL_VERSION, v1.manifest)]
    assert (version.tenant_id, version.scope) == ("", "")  # public, and free of acme's data
    assert version.props == {
        "model_atom_id": v1.manifest,
        "format": "safetensors",
        "architecture": "llama",
        "source_sha256": sha256(f"{v1.manifest} file"),
        "size_bytes": 192,
    }
    model = nodes[node_uid(Label.MODEL, model_key("acme", "tiny-llm"))]
    assert (model.tenant_id, model.props) == ("acme", {"name": "tiny-llm"})
    named = edges[(Rel.VERSION_OF, version.uid, model.uid)]
    assert (named.tenant_id, named.props) == ("acme", {"version": "v1"})

    # A tensor per version and name; its bytes one atom, whichever versions hold them.
    for release in (v1, v2):
        tensor = nodes[node_uid(Label.TENSOR, f"{release.manifest}/embed")]
        assert (tensor.scope, tensor.props["atom_id"]) == (release.manifest, history.shared)
        mv = node_uid(Label.MODEL_VERSION, release.manifest)
        assert (Rel.TENSOR_OF, tensor.uid, mv) in edges
        assert (Rel.CONTENT, tensor.uid, node_uid(Label.ATOM, history.shared)) in edges
        assert (Rel.CONTENT, mv, node_uid(Label.ATOM, release.manifest)) in edges

    promotions = [e for e in edges.values() if e.type is Rel.PROMOTED_BY]
    assert {e.tenant_id for e in promotions} == {"acme"}
    (later,) = [e for e in promotions if e.source == node_uid(Label.MODEL_VERSION, v2.manifest)]
    assert later.props["previous_version"] == "v1" and later.props["reason"] == "retrained head"
    assert later.props["promoted_at"] == later.origin.occurred_at


def test_a_generation_is_the_tenants_node_with_what_it_used_and_produced() -> None:
    history = model_history()
    stored_input = generation(history.v2, "acme", "Why?", "Because.")
    unstored = generation(history.v2, "acme", "Why not?", "Because.", store_input=False)
    facts = Facts()
    for record in stored(CODEC, [*stored_input.events, *unstored.events]):
        facts.extend(project(decode_event(CODEC, record)))
    nodes = {n.uid: n for n in winning_nodes(facts.nodes)}
    edges = {e.ident: e for e in winning_edges(facts.edges)}

    def used(source: str) -> dict[str, Value]:
        return {
            e.target: e.props["role"]
            for e in edges.values()
            if (e.type, e.source) == (Rel.USED_INPUT, source)
        }

    inference = nodes[node_uid(Label.INFERENCE, stored_input.generation_id)]
    assert inference.tenant_id == "acme"
    assert "tenant_id" not in inference.props  # the node's own column says whose it is
    assert inference.props["stop"] == ["\n\n", "User:"] and inference.props["seed"] == 2**40 + 7
    assert inference.props["input_atom_id"] == stored_input.input_atom
    assert used(inference.uid) == {
        node_uid(Label.MODEL_VERSION, history.v2.manifest): "model",
        node_uid(Label.ATOM, history.v2.tokenizer): "tokenizer",
        node_uid(Label.ATOM, str(stored_input.input_atom)): "input",
    }
    output = node_uid(Label.ATOM, stored_input.output_atom)
    assert edges[(Rel.PRODUCED, inference.uid, output)].tenant_id == "acme"
    event = node_uid(Label.EVENT, stored_input.generation_id)
    assert (Rel.RECORDED_BY, inference.uid, event) in edges
    billed = [e for e in edges.values() if (e.type, e.source) == (Rel.BILLED_AS, event)]
    units = {nodes[e.target].props["unit"]: nodes[e.target].props["quantity"] for e in billed}
    assert units == {"prompt_tokens": "12.000000000", "completion_tokens": "3.000000000"}

    # A tenant that keeps no prompts: the input's hash on the node, no input edge.
    other = nodes[node_uid(Label.INFERENCE, unstored.generation_id)]
    assert "input_atom_id" not in other.props and other.props["input_sha256"]
    assert sorted(used(other.uid).values()) == ["model", "tokenizer"]


async def test_a_search_links_to_what_it_returned_and_is_billed(tmp_path: Path) -> None:
    flow = ingest_flow("acme", "the ledger is the source of truth", "notes.md", "req-s")
    hits = [
        Hit("p1", 0.9, {"atom_id": flow.chunks[1], "document_id": flow.document,
                        "chunk_index": 1, "model_version": MODEL_VERSION}),
        Hit("p0", 0.4, {"atom_id": flow.chunks[0], "document_id": flow.document,
                        "chunk_index": 0, "model_version": MODEL_VERSION}),
    ]  # fmt: skip
    query = SearchQuery("acme", "where is the truth kept?", 5, Mode.HYBRID)
    searched = Event(
        Envelope.new("SearchPerformed", "acme", "search"), receipt_payload(query, hits, "key-1")
    )
    usage = Event(searched.envelope.caused("UsageRecorded", "search"), usage_payload(searched))
    search_events = [Keyed("search", "acme", searched), Keyed("usage", "acme", usage)]
    records = stored(CODEC, [*flow.events, *search_events])
    facts = Facts()
    for record in records:
        facts.extend(project(decode_event(CODEC, record)))

    search_uid = node_uid(Label.SEARCH_QUERY, searched.envelope.event_id)
    (node,) = [n for n in facts.nodes if n.uid == search_uid]
    assert node.tenant_id == "acme" and node.props["result_count"] == 2
    assert "where is the truth kept?" not in repr(facts)  # the log's receipt holds a hash only
    used = {e.target: e.props for e in facts.edges if (e.type, e.source) == (Rel.USED_INPUT, search_uid)}  # fmt: skip
    assert used[node_uid(Label.ATOM, flow.chunks[1])]["rank"] == 0
    assert used[node_uid(Label.ATOM, flow.chunks[0])]["score"] == 0.4
    assert node_uid(Label.MODEL_VERSION, MODEL_VERSION) in used
    billed = (Rel.BILLED_AS, node_uid(Label.EVENT, searched.envelope.event_id),
              node_uid(Label.USAGE_RECORD, usage.envelope.event_id))  # fmt: skip
    assert billed in {e.ident for e in facts.edges}

    store = EmbeddedGraphStore(tmp_path / "g.lbug")
    await store.open()
    try:
        await store.apply(facts, positions_after(records))
        once = await store.fingerprint()
        await store.apply(facts, positions_after(records))  # a re-delivered batch
        assert (await store.fingerprint()).digest == once.digest
        up = await queries.lineage(store, "acme", search_uid, Direction.UPSTREAM, 3, 100)
        assert node_uid(Label.ATOM, flow.document) in {n.uid for n in up.nodes}
        with pytest.raises(NotFound):
            await queries.lineage(store, "globex", search_uid, Direction.UPSTREAM, 3, 100)
    finally:
        await store.close()


def test_an_event_that_cannot_map_is_poison() -> None:
    env = Envelope.new("AtomChunked", "acme", "tests")
    good = AtomChunked(parent_atom_id="a" * 64, tenant_id="acme", chunker="c", chunks=[])
    record = one("atoms", Event(env, good))
    # What a buggy producer's payload could hold (the codec would refuse to encode it).
    broken = Event(env, replace(good, chunks=[None]), record)  # type: ignore[list-item]
    with pytest.raises(PoisonEvent, match="AtomChunked"):
        project(broken)


def _decoded(topic: str, event: Event[Payload]) -> Event[Payload]:
    return decode_event(CODEC, one(topic, event))

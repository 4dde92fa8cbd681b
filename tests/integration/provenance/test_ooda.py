"""The autonomous loop in the provenance service, on a real embedded log: a cycle appended as the
stages append it answers "why did the platform change this setting?" over gRPC, the telemetry
windows it rests on stay out of the graph, and re-delivered events change nothing an audit's
replay would not reproduce."""

from __future__ import annotations

from hartonomous.v1 import provenance_pb2 as pb
from services.provenance import audit
from services.provenance.domain import Label, node_uid
from tests.integration.provenance.conftest import Provenance
from tests.support.harness import CODEC
from tests.support.provenance_flow import KNOB, Cycle, Keyed, ooda_cycle


async def append_cycle(provenance: Provenance, cycle: Cycle) -> None:
    """One append per stage's publish; an action and its ConfigChanged go in one transaction."""
    await provenance.append(cycle.windows)
    batch: list[Keyed] = []
    for keyed in cycle.events:
        batch.append(keyed)
        if keyed.event.event_type != "ActionStarted":
            await provenance.append(batch)
            batch = []


async def test_a_changed_setting_leads_back_to_the_observation_that_caused_it(
    provenance: Provenance,
) -> None:
    cycle = ooda_cycle()
    await append_cycle(provenance, cycle)
    await provenance.settled()

    change = node_uid(Label.CONFIG_CHANGE, cycle.change)
    why = await provenance.stub.Lineage(
        pb.LineageRequest(
            tenant_id="platform", node_id=change, direction=pb.DIRECTION_UPSTREAM, depth=4
        )
    )
    nodes = {n.id: n for n in why.nodes}
    observation = nodes[node_uid(Label.OBSERVATION, cycle.observation)]
    window_ids = [w.event.envelope.event_id for w in cycle.windows]
    assert list(observation.properties["windows"]) == window_ids
    assert observation.properties["effect"] == 0.6
    hypothesis = nodes[node_uid(Label.HYPOTHESIS, cycle.chosen)]
    assert (hypothesis.properties["knob"], hypothesis.properties["proposed_value"]) == (KNOB, "2")
    assert nodes[node_uid(Label.ACTION, cycle.action)].properties["old_value"] == "5"
    decision = node_uid(Label.DECISION, cycle.decision)
    (approval,) = [e for e in why.edges if (e.type, e.source_id) == ("RESOLVED_BY", decision)]
    assert (approval.properties["status"], approval.properties["actor"]) == ("approved", "user:k1")

    # The observation's windows are ids on it, never nodes (nor Event nodes) of the graph.
    store = provenance.service.store
    assert await store.nodes([node_uid(Label.EVENT, w) for w in window_ids]) == {}
    all_nodes, _, _ = await store.dump()
    assert not {n.key for n in all_nodes} & set(window_ids)
    assert not any(n.origin.topic == "telemetry" for n in all_nodes)

    # The whole cycle delivered again (same event ids at new offsets) changes nothing.
    before = await store.fingerprint()
    await append_cycle(provenance, cycle)
    await provenance.settled()
    after = await store.fingerprint()
    assert after.positions != before.positions  # projected again, at their new offsets
    assert (after.nodes, after.edges, after.digest) == (before.nodes, before.edges, before.digest)
    report = await audit.verify(provenance.event_log, CODEC, after)
    assert report.ok, report.differences
    assert report.rebuilt.nodes["Observation"] == 1 and report.rebuilt.nodes["Prior"] == 1
    loop = ["ooda.decisions", "ooda.actions"]
    assert (await audit.verify(provenance.event_log, CODEC, await store.fingerprint(loop), loop)).ok

"""A graph written before the merge rule's column was named `precedence` (it was `win`) opens
upgraded on either engine: the same graph, to the byte of its canonical hash, and merges keep
obeying the rule."""

from __future__ import annotations

import uuid
from functools import cache
from pathlib import Path

import ladybug

from hartonomous.events import AvroCodec, decode_event
from services.provenance.domain import Facts
from services.provenance.graph.embedded import EmbeddedGraphStore
from services.provenance.graph.port import GraphStore
from services.provenance.handlers import positions_after, project
from tests.support.provenance_flow import ingest_flow, stored

CODEC = AvroCodec()


@cache
def the_flow() -> tuple[Facts, dict[tuple[str, int], int]]:
    """The facts of one ingest flow (the same events each call)."""
    records = stored(CODEC, ingest_flow("acme", "Upgrades keep the graph.", "u.md", "req").events)
    facts = Facts()
    for record in records:
        facts.extend(project(decode_event(CODEC, record)))
    return facts, positions_after(records)


async def applied_and_fingerprinted(store: GraphStore) -> str:
    facts, positions = the_flow()
    await store.open()
    await store.apply(facts, positions)
    digest = (await store.fingerprint()).digest
    await store.close()
    return digest


async def reopened_and_checked(store: GraphStore, before: str) -> None:
    """Opened again (and upgraded): the same graph, and applying the facts again changes
    nothing, because every stored statement still wins against a copy of itself."""
    await store.open()
    try:
        assert (await store.fingerprint()).digest == before
        facts, positions = the_flow()
        await store.apply(facts, positions)
        assert (await store.fingerprint()).digest == before
    finally:
        await store.close()


async def test_an_embedded_graph_of_the_previous_layout_opens_upgraded(tmp_path: Path) -> None:
    path = tmp_path / "graph" / "provenance.lbug"
    before = await applied_and_fingerprinted(EmbeddedGraphStore(path))
    # What the previous version wrote: the column (and its key in `data`) named `win`.
    db = ladybug.Database(str(path))
    conn = ladybug.Connection(db)
    for statement in (
        "ALTER TABLE Node RENAME precedence TO win",
        "ALTER TABLE Edge RENAME precedence TO win",
        """MATCH (n:Node) SET n.data = replace(n.data, '"precedence":', '"win":')""",
        """MATCH ()-[e:Edge]->() SET e.data = replace(e.data, '"precedence":', '"win":')""",
    ):
        conn.execute(statement)
    conn.close()
    db.close()
    await reopened_and_checked(EmbeddedGraphStore(path), before)


async def test_a_neo4j_namespace_of_the_previous_layout_opens_upgraded() -> None:
    from services.provenance.graph.neo4j import Neo4jGraphStore
    from tests.support.neo4j_server import neo4j_auth, neo4j_uri

    namespace = f"Upgrade{uuid.uuid4().hex[:12]}"

    def store() -> Neo4jGraphStore:
        return Neo4jGraphStore(neo4j_uri(), *neo4j_auth(), namespace=namespace)

    before = await applied_and_fingerprinted(store())
    old = store()
    await old.open()
    try:
        # What the previous version wrote: the property named `win`, and no schema marker.
        for query in (
            "MATCH (n:{NS}) SET n.win = n.precedence REMOVE n.precedence",
            "MATCH (:{NS})-[e]->(:{NS}) SET e.win = e.precedence REMOVE e.precedence",
            "MATCH (s:{NS}Schema) DELETE s",
        ):
            await old._run(query)
        assert await old._run("MATCH (n:{NS}) WHERE n.precedence IS NOT NULL RETURN n") == []
    finally:
        await old.close()
    try:
        await reopened_and_checked(store(), before)
    finally:
        cleanup = store()
        await cleanup.open()
        await cleanup.drop()
        await cleanup.close()

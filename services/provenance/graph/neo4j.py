"""The Neo4j GraphStore: the official driver over bolt, for production.

Every node carries the namespace label (`Prov` unless told otherwise: tests and audits use a
namespace of their own in the one database Community Edition has) plus its own label (`:Atom`),
and every edge its own relationship type, so the graph reads naturally in Neo4j Browser. A
fact's properties are stored as native properties beside the columns of domain.RESERVED.
Writes are batched `UNWIND $rows AS r MERGE ...`, one query per label or type."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

import neo4j
from neo4j import AsyncGraphDatabase, AsyncManagedTransaction
from neo4j.exceptions import Neo4jError, ServiceUnavailable, SessionExpired

from services.provenance.domain import (
    HOLDINGS,
    NODE_COLUMNS,
    OCCURRENCES,
    ORIGIN_COLUMNS,
    Edge,
    Label,
    Node,
    Partition,
    Rel,
    atom_uid,
    node_uid,
)
from services.provenance.graph.port import (
    Dump,
    GraphStore,
    GraphStoreError,
    GraphStoreUnavailable,
    edge_from,
    node_columns,
    node_from,
    origin_columns,
)

NAMESPACE = re.compile(r"[A-Z][A-Za-z0-9]{0,40}")
CLEAR_BATCH = 10_000
SCHEMA_VERSION = 2
"""What the stored properties mean; 2: the merge rule's property is `precedence` (1: `win`)."""
_UPGRADE_WIN = (
    "MATCH (n:{NS}) WHERE n.win IS NOT NULL WITH n LIMIT 10000"
    " SET n.precedence = n.win REMOVE n.win RETURN count(*) AS c",
    "MATCH (:{NS})-[e]->(:{NS}) WHERE e.win IS NOT NULL WITH e LIMIT 10000"
    " SET e.precedence = e.win REMOVE e.win RETURN count(*) AS c",
)

DUMP_ATTEMPTS = 5
_POSITIONS = "MATCH (c:{NS}Cursor) RETURN c.topic, c.part, c.next_offset"
_LOCK_CURSORS = (
    "MATCH (c:{NS}Cursor) SET c.dumping = true REMOVE c.dumping"
    " RETURN c.topic, c.part, c.next_offset"
)
_ALL_NODES = "MATCH (n:{NS}) RETURN properties(n)"
_ALL_EDGES = "MATCH (a:{NS})-[e]->(b:{NS}) RETURN type(e), a.uid, b.uid, properties(e)"

T = TypeVar("T")

# The server down or restarting, as the driver reports it: a retry later, not a failed query.
_UNREACHABLE = (ServiceUnavailable, SessionExpired, OSError)


def _positions(rows: Iterable[Sequence[Any]]) -> dict[Partition, int]:
    return {(topic, int(part)): int(offset) for topic, part, offset in rows}


def _split(
    values: Mapping[str, Any], columns: Collection[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    row = {k: v for k, v in values.items() if k in columns}
    props = {k: v for k, v in values.items() if k not in columns}
    return row, props


class Neo4jGraphStore(GraphStore):
    def __init__(
        self,
        uri: str,
        user: str,
        password: str,
        *,
        namespace: str = "Prov",
        database: str = "neo4j",
    ) -> None:
        if not NAMESPACE.fullmatch(namespace):
            raise ValueError(f"namespace must be a label name like 'Prov', got {namespace!r}")
        self._uri = uri
        self._auth = (user, password)
        self._database = database
        self._ns = namespace
        self._driver: neo4j.AsyncDriver | None = None

    # Labels, types and the namespace are validated names (enums, NAMESPACE), never user input,
    # so they may be spliced into query text; values always travel as parameters.
    def _q(self, text: str) -> str:
        return text.replace("{NS}", self._ns)

    async def open(self) -> None:
        # Schema notifications (an edge type no event has created yet) are noise, not errors.
        self._driver = AsyncGraphDatabase.driver(
            self._uri, auth=self._auth, notifications_min_severity="OFF"
        )
        try:
            await self._driver.verify_connectivity()
            for ddl in (
                "CREATE CONSTRAINT {NS}_uid IF NOT EXISTS FOR (n:{NS}) REQUIRE n.uid IS UNIQUE",
                "CREATE INDEX {NS}_label IF NOT EXISTS FOR (n:{NS}) ON (n.label)",
                "CREATE CONSTRAINT {NS}Cursor_id IF NOT EXISTS"
                " FOR (c:{NS}Cursor) REQUIRE c.id IS UNIQUE",
            ):
                await self._run(ddl)
            await self._upgrade()
        except (Neo4jError, ServiceUnavailable, OSError) as exc:
            await self.close()
            raise GraphStoreError(f"cannot open Neo4j at {self._uri}: {exc}") from exc

    async def _upgrade(self) -> None:
        """Bring a namespace written by an older version to SCHEMA_VERSION, in batches (a
        crash midway resumes where it stopped)."""
        rows = await self._run("MATCH (s:{NS}Schema) RETURN s.version AS v")
        if rows and rows[0]["v"] >= SCHEMA_VERSION:
            return
        for query in _UPGRADE_WIN:
            while (await self._run(query))[0]["c"]:
                pass
        await self._run("MERGE (s:{NS}Schema {id: 'schema'}) SET s.version = $v", v=SCHEMA_VERSION)

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()
            self._driver = None

    async def drop(self) -> None:
        """Remove the namespace entirely: its data, constraints and index."""
        await self.clear()
        await self._run("MATCH (s:{NS}Schema) DELETE s")
        for name in ("{NS}_uid", "{NS}Cursor_id"):
            await self._run(f"DROP CONSTRAINT {name} IF EXISTS")
        await self._run("DROP INDEX {NS}_label IF EXISTS")

    @property
    def _open_driver(self) -> neo4j.AsyncDriver:
        if self._driver is None:
            raise GraphStoreError("the graph store is not open")
        return self._driver

    async def _run(self, query: str, **params: Any) -> list[neo4j.Record]:
        try:
            result = await self._open_driver.execute_query(
                self._q(query), params, database_=self._database
            )
        except _UNREACHABLE as exc:
            raise GraphStoreUnavailable(f"Neo4j is unreachable: {exc}") from exc
        except Neo4jError as exc:
            raise GraphStoreError(f"Neo4j query failed: {exc}") from exc
        return list(result.records)

    async def _write(
        self, nodes: list[Node], edges: list[Edge], positions: Mapping[Partition, int]
    ) -> None:
        # Each row's `props` becomes the whole property map of its node or edge when it wins.
        by_label: dict[Label, list[dict[str, Any]]] = defaultdict(list)
        for node in nodes:
            by_label[node.label].append(
                {"uid": node.uid, "props": {**node.props, **node_columns(node)}}
            )
        by_type: dict[Rel, list[dict[str, Any]]] = defaultdict(list)
        for edge in edges:
            by_type[edge.type].append(
                {
                    "source": edge.source,
                    "target": edge.target,
                    "props": {**edge.props, **origin_columns(edge)},
                }
            )
        cursors = [
            {"id": f"{topic}/{part}", "topic": topic, "part": part, "next_offset": offset}
            for (topic, part), offset in positions.items()
        ]

        async def work(tx: AsyncManagedTransaction) -> None:
            for label, rows in by_label.items():
                await tx.run(
                    self._q(
                        "UNWIND $rows AS r MERGE (n:{NS} {uid: r.uid})"
                        f" ON CREATE SET n:{label}"
                        " WITH n, r WHERE n.precedence IS NULL"
                        " OR r.props.precedence < n.precedence SET n = r.props"
                    ),
                    rows=rows,
                )
            for type_, rows in by_type.items():
                await tx.run(
                    self._q(
                        "UNWIND $rows AS r"
                        " MATCH (a:{NS} {uid: r.source}) MATCH (b:{NS} {uid: r.target})"
                        f" MERGE (a)-[e:{type_}]->(b)"
                        " WITH e, r WHERE e.precedence IS NULL"
                        " OR r.props.precedence < e.precedence SET e = r.props"
                    ),
                    rows=rows,
                )
            if cursors:
                await tx.run(
                    self._q(
                        "UNWIND $rows AS r MERGE (c:{NS}Cursor {id: r.id})"
                        " ON CREATE SET c.topic = r.topic, c.part = r.part,"
                        " c.next_offset = r.next_offset"
                        " ON MATCH SET c.next_offset = CASE WHEN r.next_offset > c.next_offset"
                        " THEN r.next_offset ELSE c.next_offset END"
                    ),
                    rows=cursors,
                )

        await self._transaction(work)

    async def _transaction(self, work: Callable[[AsyncManagedTransaction], Awaitable[T]]) -> T:
        """Run `work` in one write transaction (retried by the driver on transient errors)."""
        try:
            async with self._open_driver.session(database=self._database) as session:
                return await session.execute_write(work)
        except _UNREACHABLE as exc:
            raise GraphStoreUnavailable(f"Neo4j is unreachable: {exc}") from exc
        except Neo4jError as exc:
            raise GraphStoreError(f"Neo4j transaction failed: {exc}") from exc

    async def positions(self) -> dict[Partition, int]:
        return _positions(await self._run(_POSITIONS))

    async def nodes(self, uids: Collection[str]) -> dict[str, Node]:
        if not uids:
            return {}
        rows = await self._run(
            "UNWIND $uids AS u MATCH (n:{NS} {uid: u}) RETURN properties(n) AS p", uids=list(uids)
        )
        return {n.uid: n for n in (self._node(r["p"]) for r in rows)}

    async def edges(
        self, uids: Collection[str], *, outgoing: bool, types: Collection[Rel], limit: int
    ) -> list[Edge]:
        if not uids or not types:
            return []
        anchor = "a" if outgoing else "b"
        rows = await self._run(
            "UNWIND $uids AS u MATCH (a:{NS})-[e]->(b:{NS}) WHERE " + anchor + ".uid = u"
            " AND type(e) IN $types"
            " RETURN type(e) AS type, a.uid AS source, b.uid AS target, properties(e) AS p"
            " LIMIT $limit",
            uids=list(uids),
            types=[t.value for t in types],
            limit=limit,
        )
        return list(self._edges(rows))

    async def held(self, tenant: str, atom_ids: Collection[str]) -> set[str]:
        if not atom_ids:
            return set()
        uids = {atom_uid(a): a for a in atom_ids}
        holdings, parts = "|".join(HOLDINGS), "|".join(OCCURRENCES)
        rows = await self._run(
            "UNWIND $uids AS u"
            f" MATCH (:{{NS}} {{uid: $tenant}})-[:{holdings}]->(:{{NS}} {{uid: u}})"
            " RETURN u"
            " UNION"
            " UNWIND $uids AS u"
            f" MATCH (:{{NS}} {{uid: $tenant}})-[:{holdings}]->(:{{NS}})<-[:{parts}]-(:{{NS}})"
            f"-[:{Rel.CONTENT}]->(:{{NS}} {{uid: u}})"
            " RETURN u",
            uids=list(uids),
            tenant=node_uid(Label.TENANT, tenant),
        )
        return {uids[r["u"]] for r in rows}

    async def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        labels = await self._run("MATCH (n:{NS}) RETURN n.label AS k, count(*) AS c")
        types = await self._run("MATCH (:{NS})-[e]->(:{NS}) RETURN type(e) AS k, count(*) AS c")
        return {r["k"]: int(r["c"]) for r in labels}, {r["k"]: int(r["c"]) for r in types}

    async def dump(self) -> Dump:
        async def read(tx: AsyncManagedTransaction) -> tuple[Dump, bool]:
            # A write advances its cursors last, in the transaction that holds its facts. With
            # every cursor write-locked here first, no write commits until this read is done;
            # only a cursor created meanwhile (a partition's first write) can slip by, and the
            # positions read again at the end catch that.
            positions = _positions(await (await tx.run(self._q(_LOCK_CURSORS))).values())
            nodes = await (await tx.run(self._q(_ALL_NODES))).values()
            edges = await (await tx.run(self._q(_ALL_EDGES))).values()
            again = _positions(await (await tx.run(self._q(_POSITIONS))).values())
            dump = Dump([self._node(r[0]) for r in nodes], list(self._edges(edges)), positions)
            return dump, again == positions

        for _ in range(DUMP_ATTEMPTS):
            dump, whole = await self._transaction(read)
            if whole:
                return dump
        raise GraphStoreError(f"the positions moved during {DUMP_ATTEMPTS} dumps in a row")

    async def clear(self) -> None:
        for label in ("{NS}", "{NS}Cursor"):
            while True:
                rows = await self._run(
                    f"MATCH (n:{label}) WITH n LIMIT {CLEAR_BATCH} DETACH DELETE n RETURN count(*) AS c"
                )
                if not rows or rows[0]["c"] == 0:
                    break

    @staticmethod
    def _node(values: Mapping[str, Any]) -> Node:
        row, props = _split(values, NODE_COLUMNS)
        return node_from(row, props)

    @staticmethod
    def _edges(rows: Iterable[Sequence[Any]]) -> Iterable[Edge]:
        for type_, source, target, values in rows:
            row, props = _split(values, ORIGIN_COLUMNS)
            yield edge_from({**row, "type": type_, "source": source, "target": target}, props)

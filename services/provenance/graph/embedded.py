"""The embedded GraphStore: ladybug (an in-process Cypher graph database) in one file under the
data dir. No server, nothing to set up: the default for `make run` and the audit's scratch graph.

ladybug tables are typed, so every node lives in one table, Node(uid, label, precedence, data),
and every edge in one, Edge(type, precedence, data): the merge keys and the merge rule's
precedence as columns, the rest
(tenant, scope, origin, the fact's own properties) as one canonical JSON `data` column. One
process at a time may open the file for writing: the running service holds it. Calls run one at
a time on the store's own thread (a connection serves one query at a time), at a lower CPU
priority than requests (hartonomous/runtime/background.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, TypeVar, cast

import ladybug

from hartonomous.runtime.background import background_executor
from services.provenance.domain import (
    HOLDINGS,
    OCCURRENCES,
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
    edge_columns,
    edge_from,
    node_columns,
    node_from,
)

T = TypeVar("T")
_Row = TypeVar("_Row")

_SCHEMA = (
    "CREATE NODE TABLE IF NOT EXISTS Node(uid STRING PRIMARY KEY, label STRING,"
    " precedence STRING, data STRING)",
    "CREATE REL TABLE IF NOT EXISTS Edge(FROM Node TO Node, type STRING, precedence STRING,"
    " data STRING)",
    "CREATE NODE TABLE IF NOT EXISTS Cursor(id STRING PRIMARY KEY, topic STRING,"
    " part INT64, next_offset INT64)",
)

# Rows travel as lists of strings: ladybug converts those several times faster than maps, and
# its lists count from 1. One MATCH per end: a comma-joined pattern is planned as a join over
# the whole table. No MERGE: ladybug plans an UNWIND ... MERGE as a pass over the table, ~0.1-1
# ms a row on a graph of 30,000 nodes; so a write looks up what is stored by key, creates what
# is new and replaces only what it beats (domain: the smallest precedence wins), in Python.
_HELD_NODES = "UNWIND $keys AS u MATCH (n:Node {uid: u}) RETURN n.uid, n.precedence"
_CREATE_NODES = """
UNWIND $rows AS r
CREATE (:Node {uid: r[1], label: r[2], precedence: r[3], data: r[4]})
"""
_REPLACE_NODES = """
UNWIND $rows AS r
MATCH (n:Node {uid: r[1]})
SET n.label = r[2], n.precedence = r[3], n.data = r[4]
"""
_HELD_EDGES = """
UNWIND $keys AS k
MATCH (a:Node {uid: k[1]})
MATCH (a)-[e:Edge]->(b:Node)
WHERE b.uid = k[2] AND e.type = k[3]
RETURN a.uid, b.uid, e.type, e.precedence
"""
_CREATE_EDGES = """
UNWIND $rows AS r
MATCH (a:Node {uid: r[1]})
MATCH (b:Node {uid: r[2]})
CREATE (a)-[:Edge {type: r[3], precedence: r[4], data: r[5]}]->(b)
"""
_REPLACE_EDGES = """
UNWIND $rows AS r
MATCH (a:Node {uid: r[1]})
MATCH (a)-[e:Edge]->(b:Node)
WHERE b.uid = r[2] AND e.type = r[3]
SET e.precedence = r[4], e.data = r[5]
"""
_HELD_CURSORS = "UNWIND $keys AS i MATCH (c:Cursor {id: i}) RETURN c.id, c.next_offset"
_CREATE_CURSORS = """
UNWIND $rows AS r
CREATE (:Cursor {id: r.id, topic: r.topic, part: r.part, next_offset: r.next_offset})
"""
_ADVANCE_CURSORS = """
UNWIND $rows AS r
MATCH (c:Cursor {id: r.id})
SET c.next_offset = r.next_offset
"""
_POSITIONS = "MATCH (c:Cursor) RETURN c.topic, c.part, c.next_offset"
_UPGRADE_WIN = (
    "ALTER TABLE Node RENAME win TO precedence",
    "ALTER TABLE Edge RENAME win TO precedence",
    """MATCH (n:Node) SET n.data = replace(n.data, '"win":', '"precedence":')""",
    """MATCH ()-[e:Edge]->() SET e.data = replace(e.data, '"win":', '"precedence":')""",
)
_HOLDINGS = [r.value for r in HOLDINGS]
_HELD = f"""
UNWIND $uids AS u
MATCH (t:Node {{uid: $tenant}})-[h:Edge]->(a:Node {{uid: u}})
WHERE h.type IN {_HOLDINGS}
RETURN DISTINCT u
UNION
UNWIND $uids AS u
MATCH (t:Node {{uid: $tenant}})-[h:Edge]->(:Node)<-[o:Edge]-(:Node)-[c:Edge]->(a:Node {{uid: u}})
WHERE h.type IN {_HOLDINGS} AND o.type IN {[r.value for r in OCCURRENCES]}
  AND c.type = '{Rel.CONTENT}'
RETURN DISTINCT u
"""


def _upgrade(conn: ladybug.Connection) -> None:
    """A graph written before the merge rule's column was named `precedence` (it was `win`):
    rename it, in the tables and in each row's `data`, in one transaction."""
    columns = conn.execute("CALL TABLE_INFO('Node') RETURN name")
    assert not isinstance(columns, list)  # one statement, one result
    if ["win"] not in columns.get_all():
        return
    conn.execute("BEGIN TRANSACTION")
    try:
        for statement in _UPGRADE_WIN:
            conn.execute(statement)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _execute(conn: ladybug.Connection, query: str, rows: list[Any]) -> None:
    # ladybug infers a parameter's type from its value: an empty list has none.
    if rows:
        conn.execute(query, {"rows": rows})


def _fetch(conn: ladybug.Connection, query: str, params: Mapping[str, Any]) -> list[list[Any]]:
    result = conn.execute(query, dict(params))
    assert not isinstance(result, list)  # one statement, one result
    return cast(list[list[Any]], result.get_all())  # rows as lists, not dicts


def _positions(rows: list[list[Any]]) -> dict[Partition, int]:
    return {(topic, int(part)): int(offset) for topic, part, offset in rows}


def _beats(precedence: str, held: str | None) -> bool:
    return held is None or precedence < held


def _upsert(
    conn: ladybug.Connection,
    queries: tuple[str, str, str],
    rows: Sequence[_Row],
    key: Callable[[_Row], str],
    wins: Callable[[_Row, Any], bool],
) -> list[_Row]:
    """Look the rows' keys up (queries: held, create, replace), create the rows whose key is
    not held, replace those that win over what is held; the rows created. Lookups and plain
    CREATEs, never MERGE: MERGE of a batch costs this store several times as much."""
    if not rows:
        return []
    held_query, create, replace = queries
    held = dict(_fetch(conn, held_query, {"keys": [key(r) for r in rows]}))
    new = [r for r in rows if key(r) not in held]
    _execute(conn, create, new)
    _execute(conn, replace, [r for r in rows if key(r) in held and wins(r, held[key(r)])])
    return new


def _write_nodes(conn: ladybug.Connection, rows: list[list[str]]) -> set[str]:
    """Create the new nodes, replace those the rows beat; the uids created."""
    queries = (_HELD_NODES, _CREATE_NODES, _REPLACE_NODES)
    new = _upsert(conn, queries, rows, lambda r: r[0], lambda r, held: _beats(r[2], held))
    return {r[0] for r in new}


def _write_edges(conn: ladybug.Connection, rows: list[list[str]], created: set[str]) -> None:
    """Create the new edges, replace those the rows beat. An edge with an end created in this
    transaction is new without a look: most are (a search's edges start at its new node)."""
    by_ident = {(r[0], r[1], r[2]): r for r in rows}  # one row per (source, target, type)
    known = [list(ident) for ident in by_ident if not created.intersection(ident[:2])]
    held: dict[tuple[str, str, str], str | None] = {}
    if known:
        held = {(a, b, t): p for a, b, t, p in _fetch(conn, _HELD_EDGES, {"keys": known})}
    _execute(conn, _CREATE_EDGES, [r for ident, r in by_ident.items() if ident not in held])
    replaced = [r for ident, r in by_ident.items() if ident in held and _beats(r[3], held[ident])]
    _execute(conn, _REPLACE_EDGES, replaced)


def _advance(conn: ladybug.Connection, rows: list[dict[str, Any]]) -> None:
    """Create the new cursors and move the others forward, never back."""
    queries = (_HELD_CURSORS, _CREATE_CURSORS, _ADVANCE_CURSORS)
    _upsert(conn, queries, rows, lambda r: r["id"], lambda r, held: r["next_offset"] > held)


def _data(columns: Mapping[str, Any], props: Mapping[str, Any]) -> str:
    """Everything but the merge keys, in one canonical JSON column."""
    return json.dumps({"columns": columns, "props": props}, sort_keys=True, separators=(",", ":"))


def _node(data: str) -> Node:
    parsed = json.loads(data)
    return node_from(parsed["columns"], parsed["props"])


def _edge(data: str) -> Edge:
    parsed = json.loads(data)
    return edge_from(parsed["columns"], parsed["props"])


class EmbeddedGraphStore(GraphStore):
    def __init__(self, path: Path, *, buffer_pool_bytes: int = 256 << 20) -> None:
        self.path = path
        self._buffer_pool_bytes = buffer_pool_bytes
        self._db: ladybug.Database | None = None
        self._conn: ladybug.Connection | None = None
        self._lock = asyncio.Lock()
        self._thread: ThreadPoolExecutor | None = None

    async def open(self) -> None:
        def connect() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = ladybug.Database(str(self.path), buffer_pool_size=self._buffer_pool_bytes)
            self._conn = ladybug.Connection(self._db)
            for ddl in _SCHEMA:
                self._conn.execute(ddl)
            _upgrade(self._conn)

        # The store's one thread, below the request path's priority (a projection's writes are
        # its work); ladybug's own workers, started from it by connect(), inherit that priority.
        self._thread = background_executor("graph")
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, connect)
        except RuntimeError as exc:  # ladybug reports a held lock, a bad file... as this
            self._thread.shutdown()
            raise GraphStoreError(f"cannot open the graph at {self.path}: {exc}") from exc

    async def close(self) -> None:
        async with self._lock:
            if self._conn is not None:
                self._conn.close()
            if self._db is not None:
                self._db.close()
            self._conn = self._db = None
            if self._thread is not None:
                self._thread.shutdown()
            self._thread = None

    async def _call(self, work: Callable[[ladybug.Connection], T]) -> T:
        async with self._lock:
            conn, thread = self._conn, self._thread
            if conn is None or thread is None:
                raise GraphStoreError("the graph store is not open")
            return await asyncio.get_running_loop().run_in_executor(thread, work, conn)

    async def _rows(self, query: str, params: Mapping[str, Any] | None = None) -> list[list[Any]]:
        return await self._call(partial(_fetch, query=query, params=params or {}))

    async def _write(
        self, nodes: list[Node], edges: list[Edge], positions: Mapping[Partition, int]
    ) -> None:
        cursor_rows = [
            {"id": f"{topic}/{part}", "topic": topic, "part": part, "next_offset": offset}
            for (topic, part), offset in positions.items()
        ]

        def write(conn: ladybug.Connection) -> None:
            # Rows are made here, on the worker thread, not on the event loop requests share.
            node_rows = [
                [n.uid, n.label.value, n.precedence, _data(node_columns(n), n.props)] for n in nodes
            ]
            edge_rows = [
                [e.source, e.target, e.type.value, e.precedence, _data(edge_columns(e), e.props)]
                for e in edges
            ]
            conn.execute("BEGIN TRANSACTION")
            try:
                created = _write_nodes(conn, node_rows)
                _write_edges(conn, edge_rows, created)
                _advance(conn, cursor_rows)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

        await self._call(write)

    async def positions(self) -> dict[Partition, int]:
        return _positions(await self._rows(_POSITIONS))

    async def nodes(self, uids: Collection[str]) -> dict[str, Node]:
        if not uids:
            return {}
        rows = await self._rows(
            "UNWIND $uids AS u MATCH (n:Node {uid: u}) RETURN n.data", {"uids": list(uids)}
        )
        return {n.uid: n for n in (_node(row[0]) for row in rows)}

    async def edges(
        self, uids: Collection[str], *, outgoing: bool, types: Collection[Rel], limit: int
    ) -> list[Edge]:
        if not uids or not types:
            return []
        pattern = (
            "(a:Node {uid: u})-[e:Edge]->(b:Node)"
            if outgoing
            else "(a:Node)-[e:Edge]->(b:Node {uid: u})"
        )
        rows = await self._rows(
            f"UNWIND $uids AS u MATCH {pattern} WHERE e.type IN $types RETURN e.data LIMIT $limit",
            {"uids": list(uids), "types": [t.value for t in types], "limit": limit},
        )
        return [_edge(row[0]) for row in rows]

    async def held(self, tenant: str, atom_ids: Collection[str]) -> set[str]:
        if not atom_ids:
            return set()
        uids = {atom_uid(a): a for a in atom_ids}
        rows = await self._rows(
            _HELD, {"uids": list(uids), "tenant": node_uid(Label.TENANT, tenant)}
        )
        return {uids[row[0]] for row in rows}

    async def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        labels = await self._rows("MATCH (n:Node) RETURN n.label, count(*)")
        types = await self._rows("MATCH ()-[e:Edge]->() RETURN e.type, count(*)")
        return {k: int(v) for k, v in labels}, {k: int(v) for k, v in types}

    async def dump(self) -> Dump:
        def read(conn: ladybug.Connection) -> Dump:
            # One call on the worker: no write runs between the reads.
            positions = _positions(_fetch(conn, _POSITIONS, {}))
            nodes = [_node(r[0]) for r in _fetch(conn, "MATCH (n:Node) RETURN n.data", {})]
            edges = [_edge(r[0]) for r in _fetch(conn, "MATCH ()-[e:Edge]->() RETURN e.data", {})]
            return Dump(nodes, edges, positions)

        return await self._call(read)

    async def clear(self) -> None:
        await self._rows("MATCH (n:Node) DETACH DELETE n")
        await self._rows("MATCH (c:Cursor) DELETE c")

"""The GraphStore port: what the provenance projection needs from a graph database. One
contract suite (tests/contract/test_graphstore_contract.py) runs against every adapter.

Writes are keyed merges that keep the winning statement of every node and edge
(domain.winning_nodes), so applying the same facts again, or in another order, changes nothing.
Reads serve lineage, explain and audit; none of them filters by tenant itself: the callers
(queries.py) apply domain.visible to what they read."""

from __future__ import annotations

import abc
from collections.abc import Collection, Mapping
from typing import Any, NamedTuple

from services.provenance.canonical import Fingerprint, fingerprint
from services.provenance.domain import (
    Edge,
    Facts,
    Label,
    Node,
    Origin,
    Partition,
    Rel,
    winning_edges,
    winning_nodes,
)


class Dump(NamedTuple):
    """The whole graph and the positions it reflects, read at one instant."""

    nodes: list[Node]
    edges: list[Edge]
    positions: dict[Partition, int]


class GraphStoreError(Exception):
    """The graph database failed or cannot be reached."""


class GraphStoreUnavailable(GraphStoreError):
    """The graph database cannot be reached now (down, restarting): try again later."""


def origin_columns(fact: Node | Edge) -> dict[str, Any]:
    o = fact.origin
    return {
        "tenant_id": fact.tenant_id,
        "defined": fact.defines,
        "precedence": fact.precedence,
        "src_topic": o.topic,
        "src_partition": o.partition,
        "src_offset": o.offset,
        "event_id": o.event_id,
        "event_tenant": o.event_tenant,
        "occurred_at": o.occurred_at,
    }


def node_columns(node: Node) -> dict[str, Any]:
    return {
        "uid": node.uid,
        "label": node.label.value,
        "key": node.key,
        "scope": node.scope,
        **origin_columns(node),
    }


def edge_columns(edge: Edge) -> dict[str, Any]:
    return {
        "type": edge.type.value,
        "source": edge.source,
        "target": edge.target,
        **origin_columns(edge),
    }


def _origin(row: Mapping[str, Any]) -> Origin:
    return Origin(
        row["src_topic"],
        int(row["src_partition"]),
        int(row["src_offset"]),
        row["event_id"],
        row["event_tenant"],
        row["occurred_at"],
    )


def node_from(row: Mapping[str, Any], props: Mapping[str, Any]) -> Node:
    return Node(
        Label(row["label"]),
        row["key"],
        row["tenant_id"],
        row["scope"],
        dict(props),
        _origin(row),
        bool(row["defined"]),
    )


def edge_from(row: Mapping[str, Any], props: Mapping[str, Any]) -> Edge:
    return Edge(
        Rel(row["type"]),
        row["source"],
        row["target"],
        row["tenant_id"],
        dict(props),
        _origin(row),
        bool(row["defined"]),
    )


class GraphStore(abc.ABC):
    @abc.abstractmethod
    async def open(self) -> None:
        """Connect and create the schema (constraints, indexes) where missing."""

    @abc.abstractmethod
    async def close(self) -> None: ...

    async def apply(self, facts: Facts, positions: Mapping[Partition, int]) -> None:
        """Merge the facts and advance the applied positions ((topic, partition) -> next
        offset, never moving back) in one transaction."""
        await self._write(winning_nodes(facts.nodes), winning_edges(facts.edges), positions)

    @abc.abstractmethod
    async def _write(
        self, nodes: list[Node], edges: list[Edge], positions: Mapping[Partition, int]
    ) -> None:
        """One transaction: nodes (one per uid) first, then edges (whose endpoints exist by
        then), then positions. A stored statement is replaced only by one of smaller precedence."""

    @abc.abstractmethod
    async def positions(self) -> dict[Partition, int]:
        """(topic, partition) -> the offset after the last record applied."""

    @abc.abstractmethod
    async def nodes(self, uids: Collection[str]) -> dict[str, Node]:
        """The stored nodes among these uids."""

    @abc.abstractmethod
    async def edges(
        self, uids: Collection[str], *, outgoing: bool, types: Collection[Rel], limit: int
    ) -> list[Edge]:
        """Up to `limit` edges of these types leaving (outgoing) or entering these nodes."""

    @abc.abstractmethod
    async def held(self, tenant: str, atom_ids: Collection[str]) -> set[str]:
        """The atom ids among these that the tenant holds: it owns or referenced the atom, or
        an atom the atom is a part of (a chunk of its text)."""

    @abc.abstractmethod
    async def counts(self) -> tuple[dict[str, int], dict[str, int]]:
        """Nodes per label and edges per type."""

    @abc.abstractmethod
    async def dump(self) -> Dump:
        """Every node and edge with the applied positions, read so that no write lands in
        between: the positions describe exactly the graph read. A live platform writes all the
        time (telemetry, searches), so a dump cannot wait for a quiet moment."""

    @abc.abstractmethod
    async def clear(self) -> None:
        """Remove every node, edge and position."""

    async def fingerprint(self, topics: Collection[str] | None = None) -> Fingerprint:
        """The graph's canonical hash (domain.fingerprint) with the positions it reflects."""
        nodes, edges, positions = await self.dump()
        return fingerprint(nodes, edges, positions, topics)

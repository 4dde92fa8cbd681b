"""The canonical form of a graph, identical whichever engine holds it: what an audit hashes and
compares (a fingerprint), and what `audit as-of --json` prints."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

from services.provenance.domain import Edge, Node, Origin, Partition


@dataclass(frozen=True)
class Fingerprint:
    nodes: dict[str, int]  # label -> count
    edges: dict[str, int]  # type -> count
    digest: str  # SHA-256 over every node and edge in canonical form
    positions: dict[Partition, int] = field(default_factory=dict)

    def differences(self, other: Fingerprint) -> list[str]:
        """Human-readable differences in counts and content (empty when equal)."""
        out = [
            f"{kind} {name}: {mine.get(name, 0)} here, {theirs.get(name, 0)} there"
            for kind, mine, theirs in (
                ("nodes", self.nodes, other.nodes),
                ("edges", self.edges, other.edges),
            )
            for name in sorted(set(mine) | set(theirs))
            if mine.get(name, 0) != theirs.get(name, 0)
        ]
        if self.positions != other.positions:
            out.append(
                f"applied log positions differ: {self.positions} here, {other.positions} there"
            )
        if self.digest != other.digest:
            out.append(f"content hash {self.digest[:16]}... here, {other.digest[:16]}... there")
        return out


def _node_line(node: Node) -> str:
    o = node.origin
    return json.dumps(
        [node.uid, node.tenant_id, node.scope, node.defines, o.topic, o.partition, o.offset,
         o.event_id, o.event_tenant, o.occurred_at, node.props],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )  # fmt: skip


def _edge_line(edge: Edge) -> str:
    o = edge.origin
    return json.dumps(
        [*edge.ident, edge.tenant_id, edge.defines, o.topic, o.partition, o.offset,
         o.event_id, o.event_tenant, o.occurred_at, edge.props],
        sort_keys=True, separators=(",", ":"), ensure_ascii=False,
    )  # fmt: skip


def _first(pair: tuple[str, object]) -> str:
    return pair[0]


def fingerprint(
    nodes: Iterable[Node],
    edges: Iterable[Edge],
    positions: Mapping[Partition, int] | None = None,
    topics: Collection[str] | None = None,
) -> Fingerprint:
    """The canonical hash and counts of a graph. With `topics`, only what events of those
    topics define (not what they merely mention) counts: a replay of just those topics must
    reproduce exactly that part of the full graph."""
    applied = dict(positions or {})
    if topics is not None:
        keep = frozenset(topics)
        nodes = [n for n in nodes if n.defines and n.origin.topic in keep]
        edges = [e for e in edges if e.defines and e.origin.topic in keep]
        applied = {k: v for k, v in applied.items() if k[0] in keep}
    digest = hashlib.sha256()
    labels: dict[str, int] = {}
    types: dict[str, int] = {}
    for line, node in sorted(((_node_line(n), n) for n in nodes), key=_first):
        digest.update(b"N" + line.encode() + b"\n")
        labels[node.label.value] = labels.get(node.label.value, 0) + 1
    for line, edge in sorted(((_edge_line(e), e) for e in edges), key=_first):
        digest.update(b"E" + line.encode() + b"\n")
        types[edge.type.value] = types.get(edge.type.value, 0) + 1
    return Fingerprint(labels, types, digest.hexdigest(), applied)


def graph_json(nodes: Iterable[Node], edges: Iterable[Edge]) -> dict[str, list[dict[str, object]]]:
    """The whole graph as plain data, sorted (`audit as-of --json`)."""

    def origin(o: Origin) -> dict[str, object]:
        return {
            "topic": o.topic,
            "partition": o.partition,
            "offset": o.offset,
            "event_id": o.event_id,
            "event_tenant": o.event_tenant,
            "occurred_at": o.occurred_at,
        }

    return {
        "nodes": [
            {"uid": n.uid, "label": n.label.value, "key": n.key, "tenant_id": n.tenant_id,
             "scope": n.scope, "defined": n.defines, "origin": origin(n.origin),
             "props": dict(n.props)}
            for n in sorted(nodes, key=lambda n: n.uid)
        ],
        "edges": [
            {"type": e.type.value, "source": e.source, "target": e.target,
             "tenant_id": e.tenant_id, "defined": e.defines, "origin": origin(e.origin),
             "props": dict(e.props)}
            for e in sorted(edges, key=lambda e: e.ident)
        ],
    }  # fmt: skip

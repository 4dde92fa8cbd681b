"""The provenance graph's rules, free of I/O: what a node and an edge are, the merge rule that
makes the projection independent of delivery order, who may see what, which way lineage runs,
and the canonical form an audit hashes.

Identity: a node is (label, key), its uid is "Label:key"; an edge is (type, source uid, target
uid). Every fact records the event it came from (topic, partition, offset, event id, the
event's tenant and time). Several events may state a fact about the same node (an atom is
ingested, then chunked into, then embedded): the winning statement is the smallest by
(defines before mentions, then log position), so replaying the log in any order, or twice,
leaves the same graph.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

Scalar = str | int | float | bool
Value = Scalar | list[str]
"""A fact's property: a scalar, or a list of strings (ids, such as the telemetry windows an
observation rests on), which both engines store natively."""
Props = Mapping[str, Value]

Partition = tuple[str, int]
"""(topic, partition)."""


class Label(enum.StrEnum):
    TENANT = "Tenant"
    EVENT = "Event"
    ATOM = "Atom"
    CHUNK = "Chunk"
    TENSOR = "Tensor"
    EMBEDDING = "Embedding"
    MODEL = "Model"
    MODEL_VERSION = "ModelVersion"
    USAGE_RECORD = "UsageRecord"
    CONFIG_CHANGE = "ConfigChange"
    INFERENCE = "Inference"
    SEARCH_QUERY = "SearchQuery"
    OBSERVATION = "Observation"
    HYPOTHESIS = "Hypothesis"
    DECISION = "Decision"
    ACTION = "Action"
    OUTCOME = "Outcome"
    PRIOR = "Prior"


class Rel(enum.StrEnum):
    OWNS = "OWNS"  # Tenant -> Atom it ingested first
    REFERENCED = "REFERENCED"  # Tenant -> Atom it ingested again (a dedup hit)
    RELEASED = "RELEASED"  # Tenant -> Atom it deleted (a tombstone: who, when, why)
    ERASED = "ERASED"  # Tenant -> the Event that erased it (who, how many documents)
    CHUNK_OF = "CHUNK_OF"  # Chunk -> the Atom it was cut from
    TENSOR_OF = "TENSOR_OF"  # Tensor -> the ModelVersion it is a tensor of
    CONTENT = "CONTENT"  # Chunk/Tensor/ModelVersion -> the Atom holding its bytes
    EMBEDDED_AS = "EMBEDDED_AS"  # Atom -> Embedding
    COMPUTED_BY = "COMPUTED_BY"  # Embedding -> ModelVersion
    VERSION_OF = "VERSION_OF"  # ModelVersion -> Model (a tenant's: its version label)
    PROMOTED_BY = "PROMOTED_BY"  # ModelVersion -> the Event that made it its model's live one
    USED_INPUT = "USED_INPUT"  # Inference/SearchQuery -> Atom/ModelVersion it read
    PRODUCED = "PRODUCED"  # Inference -> the Atom holding its output
    CAUSED_BY = "CAUSED_BY"  # Event -> the Event named by its causation id
    BILLED_AS = "BILLED_AS"  # Event -> the UsageRecord it caused
    RECORDED_BY = "RECORDED_BY"  # a fact node -> the Event that stated it
    PROPOSED_FOR = "PROPOSED_FOR"  # Hypothesis -> the Observation it answers
    CHOSE = "CHOSE"  # Decision -> the Hypothesis it chose
    RESOLVED_BY = "RESOLVED_BY"  # Decision/Action -> the Event that settled it
    EXECUTES = "EXECUTES"  # Action -> the Decision it carries out
    CHANGED = "CHANGED"  # Action -> the ConfigChange it published
    ROLLS_BACK = "ROLLS_BACK"  # Action -> the Action it reverts
    EVALUATES = "EVALUATES"  # Outcome -> the Action it judged
    LEARNED_FROM = "LEARNED_FROM"  # Prior -> the Outcome that moved it


UPSTREAM_AT_TARGET = frozenset(
    {
        Rel.CHUNK_OF,
        Rel.TENSOR_OF,
        Rel.COMPUTED_BY,
        Rel.VERSION_OF,
        Rel.PROMOTED_BY,
        Rel.USED_INPUT,
        Rel.CAUSED_BY,
        Rel.RECORDED_BY,
        Rel.PROPOSED_FOR,
        Rel.CHOSE,
        Rel.RESOLVED_BY,
        Rel.EXECUTES,
        Rel.ROLLS_BACK,
        Rel.EVALUATES,
        Rel.LEARNED_FROM,
    }
)
"""Edge types whose target is the cause or input of their source; for the others (OWNS,
REFERENCED, CONTENT, EMBEDDED_AS, PRODUCED, BILLED_AS, CHANGED) the source comes first. Upstream
walks towards causes, downstream towards effects."""

OCCURRENCES = (Rel.CHUNK_OF,)
"""Edges from a part to the whole it was cut from: holding the whole grants sight of the part.
Not TENSOR_OF: a model's ingest holds every tensor atom itself (AtomIngested/AtomReferenced)."""

HOLDINGS = (Rel.OWNS, Rel.REFERENCED)


class Direction(enum.StrEnum):
    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"


def walk_types(direction: Direction) -> tuple[frozenset[Rel], frozenset[Rel]]:
    """(edge types to follow outgoing, edge types to follow incoming) for a walk."""
    source_first = frozenset(Rel) - UPSTREAM_AT_TARGET
    if direction is Direction.UPSTREAM:
        return UPSTREAM_AT_TARGET, source_first
    return source_first, UPSTREAM_AT_TARGET


class InvalidRequest(ValueError):
    """A query the caller has to fix."""


class NotFound(LookupError):
    """No such node, or the tenant may not see it (the two are never told apart)."""


ATOM_ID = re.compile(r"[0-9a-f]{64}")
GENERATION_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
"""The id a completion returns (the UUID of its InferencePerformed event)."""
_LABELS = frozenset(label.value for label in Label)
DEFAULT_DEPTH, MAX_DEPTH = 3, 10
DEFAULT_LIMIT, MAX_LIMIT = 100, 1000


def parse_node_id(node_id: str) -> str:
    """A node's uid from what a caller may name it by: the uid, a bare atom id, or a bare
    generation id (what a completion returned is all a client has of it)."""
    if ATOM_ID.fullmatch(node_id):
        return atom_uid(node_id)
    if GENERATION_ID.fullmatch(node_id):
        return node_uid(Label.INFERENCE, node_id)
    label, sep, key = node_id.partition(":")
    if not sep or not key or label not in _LABELS:
        raise InvalidRequest(
            f"node_id {node_id!r} is neither an atom id (64 hex characters), a generation id"
            " (a UUID) nor 'Label:key'"
        )
    return node_id


def parse_atom_id(atom_id: str) -> str:
    if not ATOM_ID.fullmatch(atom_id):
        raise InvalidRequest(f"atom_id {atom_id!r} is not an atom id (64 hex characters)")
    return atom_id


def lineage_bounds(depth: int, limit: int) -> tuple[int, int]:
    """Depth and node limit of a lineage walk; 0 means the default."""
    depth = depth or DEFAULT_DEPTH
    limit = limit or DEFAULT_LIMIT
    if not 1 <= depth <= MAX_DEPTH:
        raise InvalidRequest(f"depth must be in [0, {MAX_DEPTH}], got {depth}")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidRequest(f"limit must be in [0, {MAX_LIMIT}], got {limit}")
    return depth, limit


ORIGIN_COLUMNS = (
    "tenant_id",
    "defined",
    "precedence",
    "src_topic",
    "src_partition",
    "src_offset",
    "event_id",
    "event_tenant",
    "occurred_at",
)
"""The stored columns of a node or an edge besides its identity and its own properties."""
NODE_COLUMNS = ("uid", "label", "key", "scope", *ORIGIN_COLUMNS)
RESERVED = frozenset({*NODE_COLUMNS, "type"})
"""Columns every stored node/edge has; a fact's own properties must not reuse these names."""


def node_uid(label: Label, key: str) -> str:
    return f"{label}:{key}"


def atom_uid(atom_id: str) -> str:
    return node_uid(Label.ATOM, atom_id)


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a fact came from: its record in the log and the event's envelope."""

    topic: str
    partition: int
    offset: int
    event_id: str
    event_tenant: str
    occurred_at: str  # ISO 8601, UTC

    def precedence(self, defines: bool) -> str:
        """The merge rule's sort key: the statement of a fact with the smallest precedence
        wins. Fields are joined by a space, which sorts below every character a topic name may
        hold."""
        return f"{0 if defines else 1} {self.topic} {self.partition:010d} {self.offset:020d}"


@dataclass(frozen=True, slots=True)
class Node:
    """tenant_id "" marks a shared node: public when scope is "" (a ModelVersion), else visible
    to the tenants that hold the atom named by scope (content-addressed Atom/Chunk/Embedding).
    `defines` is False for a node only mentioned by an event (a placeholder until defined)."""

    label: Label
    key: str
    tenant_id: str
    scope: str
    props: Props
    origin: Origin
    defines: bool = True

    @property
    def uid(self) -> str:
        return node_uid(self.label, self.key)

    @property
    def precedence(self) -> str:
        return self.origin.precedence(self.defines)


@dataclass(frozen=True, slots=True)
class Edge:
    """tenant_id "" for structure between shared nodes, else the tenant whose fact it is."""

    type: Rel
    source: str
    target: str
    tenant_id: str
    props: Props
    origin: Origin
    defines: bool = True

    @property
    def ident(self) -> tuple[str, str, str]:
        return (self.type, self.source, self.target)

    @property
    def precedence(self) -> str:
        return self.origin.precedence(self.defines)


@dataclass
class Facts:
    """What a batch of events states about the graph."""

    nodes: list[Node] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def extend(self, other: Facts) -> None:
        self.nodes += other.nodes
        self.edges += other.edges


def check_props(props: Props) -> None:
    clash = RESERVED.intersection(props)
    if clash:
        raise ValueError(f"property names {sorted(clash)} are reserved for the graph's columns")


class FactSet:
    """Builds the facts one event states; every fact carries the event's origin."""

    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.facts = Facts()
        self.event_props: dict[str, Scalar] = {}  # what the event's own node will carry

    @property
    def event_uid(self) -> str:
        return node_uid(Label.EVENT, self.origin.event_id)

    def node(
        self,
        label: Label,
        key: str,
        *,
        tenant: str = "",
        scope: str = "",
        props: Props | None = None,
        defines: bool = True,
    ) -> str:
        values = {} if props is None else props
        check_props(values)
        node = Node(label, key, tenant, scope, values, self.origin, defines)
        self.facts.nodes.append(node)
        return node.uid

    def mention(self, label: Label, key: str, *, tenant: str = "", scope: str = "") -> str:
        """A node this event refers to but does not describe (another event defines it)."""
        return self.node(label, key, tenant=tenant, scope=scope, defines=False)

    def edge(
        self, type_: Rel, source: str, target: str, *, tenant: str = "", props: Props | None = None
    ) -> None:
        values = {} if props is None else props
        check_props(values)
        self.facts.edges.append(Edge(type_, source, target, tenant, values, self.origin))

    def recorded(self, uid: str, tenant: str) -> None:
        """Link a node this event defined to the event itself (its provenance)."""
        self.edge(Rel.RECORDED_BY, uid, self.event_uid, tenant=tenant)


def canonical_props(props: Props) -> str:
    return json.dumps(props, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _beats(new: Node | Edge, held: Node | Edge) -> bool:
    if new.precedence != held.precedence:
        return new.precedence < held.precedence
    # Props break a tie only between statements from one record; they never do in practice.
    return canonical_props(new.props) < canonical_props(held.props)


def winning_nodes(nodes: Iterable[Node]) -> list[Node]:
    """One statement per uid, the winner among these: what a store merges with what it holds."""
    best: dict[str, Node] = {}
    for node in nodes:
        held = best.get(node.uid)
        if held is None or _beats(node, held):
            best[node.uid] = node
    return list(best.values())


def winning_edges(edges: Iterable[Edge]) -> list[Edge]:
    best: dict[tuple[str, str, str], Edge] = {}
    for edge in edges:
        held = best.get(edge.ident)
        if held is None or _beats(edge, held):
            best[edge.ident] = edge
    return list(best.values())


def advance(positions: dict[Partition, int], topic: str, partition: int, offset: int) -> None:
    """Record that everything before `offset` of a partition is applied (never moving back)."""
    key = (topic, partition)
    positions[key] = max(positions.get(key, 0), offset)


# ---------------------------------------------------------------------------------------
# Visibility


def visible(node: Node, tenant: str, held: frozenset[str] | set[str]) -> bool:
    """A tenant sees its own nodes, public nodes, and content it holds (`held`: atom ids)."""
    if node.tenant_id:
        return node.tenant_id == tenant
    return not node.scope or node.scope in held


def edge_visible(edge: Edge, tenant: str) -> bool:
    return edge.tenant_id in ("", tenant)


def shows_origin(node: Node | Edge, tenant: str) -> bool:
    """A shared node's event (id, time, position) is the business of the tenant that emitted it;
    others see the node without it."""
    return node.origin.event_tenant == tenant

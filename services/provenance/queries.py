"""Lineage, Explain (of an atom, a chunk, an embedding or a generation) and TensorModels over
any GraphStore, for one tenant at a time.

The store reads without filtering; everything read passes domain.visible before it is used or
returned, so a walk never steps onto, or through, a node the tenant may not see."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from hartonomous.tenants import parse_tenant_id
from services.provenance.domain import (
    HOLDINGS,
    Direction,
    Edge,
    InvalidRequest,
    Label,
    Node,
    NotFound,
    Rel,
    atom_uid,
    edge_visible,
    lineage_bounds,
    node_uid,
    parse_atom_id,
    parse_node_id,
    visible,
    walk_types,
)
from services.provenance.explain import Document, Embedding, Explanation, Generation
from services.provenance.graph.port import GraphStore

EDGE_FETCH_PER_NODE = 10
"""Edges read per hop, per node the walk may still return: hubs (a model version embedded a
million chunks) are cut there and the reply says it was truncated."""

MAX_DOCUMENTS = 50
MAX_HOLDERS = 10_000
"""Holdings read per document: every tenant's upload of the same bytes is one."""
MAX_CHAIN = 16
MAX_TENSOR_USES = 10_000
"""Tensor nodes read per tensor atom, every tenant's versions holding those bytes included."""
MAX_VERSION_TENSORS = 100_000
"""Tensors counted per model version (a mixture of experts stored per expert has tens of
thousands); a count at this cap means at least as many."""


@dataclass(frozen=True, order=True)
class TensorModel:
    """One of the tenant's model versions holding a tensor atom, by the tenant's names."""

    name: str
    version: str
    model_atom_id: str
    tensor_names: tuple[str, ...]


@dataclass(frozen=True)
class Lineage:
    root: Node
    nodes: list[Node]
    edges: list[Edge]
    truncated: bool


async def _visible(store: GraphStore, tenant: str, nodes: Iterable[Node]) -> list[Node]:
    nodes = list(nodes)
    scopes = {n.scope for n in nodes if not n.tenant_id and n.scope}
    held = await store.held(tenant, scopes)
    return [n for n in nodes if visible(n, tenant, held)]


async def _node(store: GraphStore, tenant: str, uid: str) -> Node:
    found = (await store.nodes([uid])).get(uid)
    if found is None or not await _visible(store, tenant, [found]):
        raise NotFound(f"no node {uid} for tenant {tenant}")
    return found


async def lineage(
    store: GraphStore, tenant_id: str, node_id: str, direction: Direction, depth: int, limit: int
) -> Lineage:
    tenant = parse_tenant_id(tenant_id)
    depth, limit = lineage_bounds(depth, limit)
    root = await _node(store, tenant, parse_node_id(node_id))
    seen = {root.uid: root}
    kept: dict[tuple[str, str, str], Edge] = {}
    outgoing, incoming = walk_types(direction)
    frontier, truncated = [root.uid], False
    for _ in range(depth):
        if not frontier or len(seen) >= limit:
            break
        fetch = EDGE_FETCH_PER_NODE * limit
        found: list[Edge] = []
        for out, types in ((True, outgoing), (False, incoming)):
            batch = await store.edges(frontier, outgoing=out, types=types, limit=fetch)
            truncated |= len(batch) >= fetch
            found += [e for e in batch if edge_visible(e, tenant)]
        new = sorted({uid for e in found for uid in (e.source, e.target)} - seen.keys())
        fresh = await _visible(store, tenant, (await store.nodes(new)).values())
        frontier = []
        for node in sorted(fresh, key=lambda n: n.uid):
            if len(seen) >= limit:
                truncated = True
                break
            seen[node.uid] = node
            frontier.append(node.uid)
        kept.update((e.ident, e) for e in found if e.source in seen and e.target in seen)
    return Lineage(
        root, list(seen.values()), sorted(kept.values(), key=lambda e: e.ident), truncated
    )


async def explain(store: GraphStore, tenant_id: str, node_id: str) -> Explanation:
    tenant = parse_tenant_id(tenant_id)
    target = await _node(store, tenant, parse_node_id(node_id))
    if target.label is Label.INFERENCE:
        return await _explain_generation(store, tenant, target)
    if target.label is Label.ATOM:
        atom_id = target.key
    elif target.label in (Label.CHUNK, Label.EMBEDDING):
        atom_id = str(target.props["atom_id"])
    else:
        raise InvalidRequest(
            f"Explain takes an atom, a chunk, an embedding or a generation, not a {target.label};"
            " use Lineage"
        )
    documents = await _documents(store, tenant, atom_id, target)
    embeddings = await _embeddings(store, tenant, atom_id, target)
    start = [e.event for e in embeddings if e.event is not None][:1]
    first = start[0].uid if start else _earliest_event(documents)
    chain = await _chain(store, tenant, first) if first else []
    return Explanation(atom_id, documents, embeddings, chain)


async def _documents(store: GraphStore, tenant: str, atom_id: str, target: Node) -> list[Document]:
    """The tenant's documents the atom is (its own holding) or is a chunk of."""
    if target.label is Label.CHUNK:
        chunks = [target]
    else:
        cut = await store.edges(
            [atom_uid(atom_id)], outgoing=False, types=[Rel.CONTENT], limit=MAX_DOCUMENTS
        )
        found = await store.nodes([e.source for e in cut])
        chunks = [n for n in found.values() if n.label is Label.CHUNK]
    candidates = {str(c.props["parent_atom_id"]) for c in chunks}
    if target.label is Label.ATOM:
        candidates.add(atom_id)
    documents: list[Document] = []
    for doc_id, whole in sorted((await _held_documents(store, tenant, candidates)).items()):
        if doc_id == atom_id and target.label is Label.ATOM:
            documents.append(whole)
        documents += [
            replace(whole, chunk=chunk)
            for chunk in sorted(chunks, key=lambda c: c.uid)
            if chunk.props["parent_atom_id"] == doc_id
        ]
    return documents[:MAX_DOCUMENTS]


async def _held_documents(
    store: GraphStore, tenant: str, atom_ids: Collection[str]
) -> dict[str, Document]:
    """atom id -> the tenant's document of it (its holding), for the atoms it holds."""
    holdings = await _holdings(store, tenant, atom_ids)
    atoms = await store.nodes([atom_uid(a) for a in holdings])
    return {a: Document(a, atoms.get(atom_uid(a)), held, None) for a, held in holdings.items()}


async def _holdings(store: GraphStore, tenant: str, atom_ids: Collection[str]) -> dict[str, Edge]:
    """atom id -> the tenant's earliest OWNS/REFERENCED edge to it."""
    holder = node_uid(Label.TENANT, tenant)
    edges = await store.edges(
        [atom_uid(a) for a in atom_ids], outgoing=False, types=HOLDINGS, limit=MAX_HOLDERS
    )
    found: dict[str, Edge] = {}
    for edge in sorted((e for e in edges if e.source == holder), key=lambda e: e.precedence):
        found.setdefault(edge.target.partition(":")[2], edge)
    return found


async def _embeddings(
    store: GraphStore, tenant: str, atom_id: str, target: Node
) -> list[Embedding]:
    if target.label is Label.EMBEDDING:
        nodes = [target]
    else:
        edges = await store.edges(
            [atom_uid(atom_id)], outgoing=True, types=[Rel.EMBEDDED_AS], limit=100
        )
        nodes = list((await store.nodes([e.target for e in edges])).values())
    recorded = await store.edges(
        [n.uid for n in nodes], outgoing=True, types=[Rel.RECORDED_BY], limit=1000
    )
    own = [e for e in recorded if e.tenant_id == tenant]
    events = await store.nodes([e.target for e in own])
    by_embedding = {e.source: events.get(e.target) for e in sorted(own, key=lambda e: e.precedence)}
    return [Embedding(n, by_embedding.get(n.uid)) for n in sorted(nodes, key=lambda n: n.uid)]


def _earliest_event(documents: list[Document]) -> str | None:
    holdings = sorted((d.holding for d in documents), key=lambda e: e.precedence)
    return node_uid(Label.EVENT, holdings[0].origin.event_id) if holdings else None


async def _chain(store: GraphStore, tenant: str, first: str) -> list[Node]:
    """The tenant's events from `first` back along CAUSED_BY."""
    chain: list[Node] = []
    uid: str | None = first
    while uid is not None and len(chain) < MAX_CHAIN:
        event = (await store.nodes([uid])).get(uid)
        if event is None or event.tenant_id != tenant:
            break
        chain.append(event)
        causes = await store.edges([uid], outgoing=True, types=[Rel.CAUSED_BY], limit=1)
        uid = causes[0].target if causes else None
    return chain


async def _explain_generation(store: GraphStore, tenant: str, inference: Node) -> Explanation:
    """The receipt (the Inference node, the tenant's own), the model version it ran as the
    tenant named it, that version's tensor count, the input and output documents, and the
    chain from the InferencePerformed event."""
    p = inference.props
    version = node_uid(Label.MODEL_VERSION, str(p["model_version"]))
    names = [(name, label) for name, label, _ in await _names(store, tenant, [version])]
    # Counted whether or not the tenant may see the tensors (those who hold the manifest do):
    # how many parts a public version has tells no more than its size does.
    tensors = await store.edges(
        [version], outgoing=False, types=[Rel.TENSOR_OF], limit=MAX_VERSION_TENSORS
    )
    atom_ids = [str(p[k]) for k in ("input_atom_id", "output_atom_id") if k in p]
    held = await _held_documents(store, tenant, atom_ids)
    documents = [held[a] for a in atom_ids if a in held]
    chain = await _chain(store, tenant, node_uid(Label.EVENT, inference.origin.event_id))
    generation = Generation(inference, names, len(tensors))
    return Explanation("", documents, [], chain, generation)


async def tensor_models(store: GraphStore, tenant_id: str, atom_id: str) -> list[TensorModel]:
    """Atom <-CONTENT- Tensor -TENSOR_OF-> ModelVersion -VERSION_OF-> Model, for one tenant."""
    tenant = parse_tenant_id(tenant_id)
    tensors = await _tensors_of(store, tenant, parse_atom_id(atom_id))
    versions: dict[str, list[str]] = {}  # version uid -> its tensors of these bytes
    for edge in await store.edges(
        tensors, outgoing=True, types=[Rel.TENSOR_OF], limit=len(tensors)
    ):
        versions.setdefault(edge.target, []).append(tensors[edge.source])
    found = sorted(
        TensorModel(name, label, uid.partition(":")[2], tuple(sorted(versions[uid])))
        for name, label, uid in await _names(store, tenant, versions)
    )
    if not found:
        raise NotFound(f"no model version of tenant {tenant} has a tensor {atom_id}")
    return found


async def _tensors_of(store: GraphStore, tenant: str, atom_id: str) -> dict[str, str]:
    """Tensor uid -> tensor name, for the tensors the tenant may see whose bytes the atom is."""
    uses = await store.edges(
        [atom_uid(atom_id)], outgoing=False, types=[Rel.CONTENT], limit=MAX_TENSOR_USES
    )
    found = (await store.nodes([e.source for e in uses])).values()
    tensors = await _visible(store, tenant, (n for n in found if n.label is Label.TENSOR))
    return {n.uid: str(n.props["name"]) for n in tensors}


async def _names(
    store: GraphStore, tenant: str, versions: Collection[str]
) -> list[tuple[str, str, str]]:
    """(model name, version label, version uid) for each name the tenant gave these versions:
    only its own VERSION_OF edges (which carry the label) count, so the names another tenant
    gave the same bytes never show."""
    labels = await store.edges(
        versions, outgoing=True, types=[Rel.VERSION_OF], limit=MAX_TENSOR_USES
    )
    own = [e for e in labels if e.tenant_id == tenant]
    models = await _visible(store, tenant, (await store.nodes([e.target for e in own])).values())
    names = {m.uid: str(m.props["name"]) for m in models}
    return sorted(
        (names[e.target], str(e.props["version"]), e.source) for e in own if e.target in names
    )

"""What Explain tells a tenant about an atom or embedding, and how it reads as text (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from services.provenance.domain import Edge, Node, Origin, Rel


@dataclass(frozen=True)
class Document:
    """A document the tenant holds that the explained atom is, or is a chunk of."""

    atom_id: str
    atom: Node | None  # None while only mentioned (its AtomIngested not yet projected)
    holding: Edge  # the tenant's OWNS or REFERENCED edge: its source, request and time
    chunk: Node | None  # where the explained atom sits in it; None: it is the document


@dataclass(frozen=True)
class Embedding:
    node: Node
    event: Node | None  # the EmbeddingComputed event when it is the tenant's own


@dataclass(frozen=True)
class Explanation:
    atom_id: str
    documents: list[Document]
    embeddings: list[Embedding]
    chain: list[Node]  # Event nodes, newest first, each caused by the next


def _at(origin: Origin) -> str:
    return f"{origin.topic}[{origin.partition}]@{origin.offset}"


def _document(doc: Document) -> list[str]:
    held = doc.holding
    source = held.props.get("source_uri")
    line = f"document {doc.atom_id}" + (f" {source!r}" if source else "")
    if doc.atom is not None:
        p = doc.atom.props
        line += f" ({p.get('modality')}, {p.get('mime_type', '?')}, {p.get('size_bytes')} bytes)"
    verb = "ingested" if held.type is Rel.OWNS else "referenced (already stored)"
    lines = [
        line,
        f"  {verb} at {held.origin.occurred_at} by request {held.props.get('request_id')}"
        f" (event {held.origin.event_id}, {_at(held.origin)})",
    ]
    if doc.chunk is not None:
        c = doc.chunk.props
        lines.append(
            f"  chunk #{c['index']}: chars {c['start_char']}-{c['end_char']},"
            f" bytes {c['start_byte']}-{c['end_byte']}, chunker {c['chunker']!r}"
        )
    return lines


def _embedding(emb: Embedding) -> list[str]:
    p = emb.node.props
    line = (
        f"embedded as {emb.node.uid} by {p['model_id']} version {p['model_version']}"
        f" ({p['dim']} dims)"
    )
    if emb.event is None:
        return [line, "  computed for the same content held elsewhere"]
    return [line, f"  at {emb.event.origin.occurred_at} (event {emb.event.key})"]


def _step(event: Node) -> str:
    p = event.props
    line = (
        f"  {p.get('event_type', 'event')} {event.key} at {event.origin.occurred_at}"
        f" on {_at(event.origin)} by {p.get('produced_by')}, request {p.get('correlation_id')}"
    )
    return line if event.defines else f"  event {event.key} (not in the log yet)"


def render(explanation: Explanation) -> str:
    lines = [f"atom {explanation.atom_id}"]
    if not explanation.documents:
        lines.append("no document of yours holds it")
    for doc in explanation.documents:
        lines += _document(doc)
    if not explanation.embeddings:
        lines.append("not embedded yet")
    for emb in explanation.embeddings:
        lines += _embedding(emb)
    if explanation.chain:
        lines.append("caused by:")
        lines += [_step(event) for event in explanation.chain]
    return "\n".join(lines)

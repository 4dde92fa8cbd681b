"""What Explain tells a tenant about an atom, an embedding or a generation, and how it reads as
text (pure)."""

from __future__ import annotations

import json
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
class Generation:
    """A generation's receipt and the model version it ran."""

    node: Node  # the Inference node: its ids, parameters, counts and timings
    names: list[tuple[str, str]]  # (model name, version label) the tenant gave that version
    tensors: int  # tensor atoms of that version


@dataclass(frozen=True)
class Explanation:
    atom_id: str  # "" for a generation
    documents: list[Document]  # a generation's: its input (when stored) and output atoms
    embeddings: list[Embedding]
    chain: list[Node]  # Event nodes, newest first, each caused by the next
    generation: Generation | None = None


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


def _generation(gen: Generation) -> list[str]:
    p = gen.node.props
    named = ", ".join(f"{name} {label}" for name, label in gen.names)
    yours = f" (your {named})" if named else ""
    stored = (
        f"input {p['input_atom_id']}"
        if "input_atom_id" in p
        else f"input not stored (sha256 {p['input_sha256']})"
    )
    return [
        f"generation {gen.node.key} ({p['kind']}) at {gen.node.origin.occurred_at}",
        f"  model {p['model_id']} version {p['model_version']}{yours}: {gen.tensors} tensor"
        f" atoms, tokenizer atom {p['tokenizer_atom_id']}",
        f"  temperature {p['temperature']}, top_p {p['top_p']}, top_k {p['top_k']},"
        f" seed {p['seed']}, max_tokens {p['max_tokens']}, stop {json.dumps(p['stop'])}",
        f"  {stored}, output {p['output_atom_id']}",
        f"  finished ({p['finish_reason']}) after {p['prompt_tokens']} prompt and"
        f" {p['completion_tokens']} completion tokens, first token {p['first_token_ms']} ms,"
        f" total {p['total_ms']} ms",
    ]


def _atom(explanation: Explanation) -> list[str]:
    lines = [f"atom {explanation.atom_id}"]
    if not explanation.documents:
        lines.append("no document of yours holds it")
    for doc in explanation.documents:
        lines += _document(doc)
    if not explanation.embeddings:
        lines.append("not embedded yet")
    for emb in explanation.embeddings:
        lines += _embedding(emb)
    return lines


def render(explanation: Explanation) -> str:
    gen = explanation.generation
    if gen is None:
        lines = _atom(explanation)
    else:
        lines = _generation(gen) + [line for d in explanation.documents for line in _document(d)]
    if explanation.chain:
        lines.append("caused by:")
        lines += [_step(event) for event in explanation.chain]
    return "\n".join(lines)

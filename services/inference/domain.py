"""The inference service's rules, free of I/O: what a valid Embed request is, which atoms and
chunks are embedded, and the payloads of the events it emits."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from hartonomous.chunks import chunk_text
from hartonomous.events import usage_quantity
from hartonomous.events.payloads import EmbeddingComputed, TextChunk, UsageRecorded
from hartonomous.tenants import parse_tenant_id

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
PRODUCED_BY = "inference"

MAX_TEXTS_PER_CALL = 2048
MAX_TEXT_BYTES = 32 * 1024
"""UTF-8 bytes per Embed text. The model reads 256 tokens at most, so a longer text is a
caller's mistake (or abuse) rather than something worth tokenizing."""

MAX_DOCUMENT_CHARS = 64 * 1024
"""A whole text atom is embedded from this prefix: 256 word pieces never need more unless
the text is mostly whitespace, and the tokenizer works through the whole input before it
truncates, so a multi-megabyte atom would cost seconds for nothing."""

TEXT_MEDIA_TYPES = ("application/json",)
"""Besides text/*: media types whose atoms are UTF-8 text worth embedding."""


class RequestError(ValueError):
    """An Embed request the caller has to fix."""


class InvalidArgument(RequestError):
    pass


class UnknownModel(RequestError):
    pass


class ModelLoading(RuntimeError):
    """The model is not loaded (yet): the caller should retry later."""


class BadAtom(ValueError):
    """An atom whose content can never be embedded (its event goes to the dead-letter topic)."""


@dataclass(frozen=True)
class ModelInfo:
    """What every emitted event says about the model that produced it."""

    model_id: str
    version: str
    dim: int
    device: str


@dataclass(frozen=True)
class AtomText:
    atom_id: str
    text: str


# ---------------------------------------------------------------------------------------
# Embed requests


def validate_embed_request(texts: Sequence[str], tenant_id: str, model: str) -> None:
    """Raise InvalidArgument or UnknownModel naming what is wrong (the first problem found)."""
    parse_tenant_id(tenant_id)
    if model not in ("", MODEL_ID):
        raise UnknownModel(f"model {model!r} is not served; available: {MODEL_ID!r}")
    if not texts:
        raise InvalidArgument("texts is empty: send at least one text")
    if len(texts) > MAX_TEXTS_PER_CALL:
        raise InvalidArgument(
            f"{len(texts)} texts in one call; at most {MAX_TEXTS_PER_CALL} are allowed"
        )
    for index, text in enumerate(texts):
        if not text.strip():
            raise InvalidArgument(f"texts[{index}] is empty or whitespace only")
        size = len(text.encode())
        if size > MAX_TEXT_BYTES:
            raise InvalidArgument(
                f"texts[{index}] is {size} bytes of UTF-8; at most {MAX_TEXT_BYTES} are allowed"
            )


# ---------------------------------------------------------------------------------------
# Atoms


def is_text_atom(modality: str, mime_type: str) -> bool:
    """Text modality whose media type (parameters aside) promises decodable text."""
    media_type = mime_type.split(";", 1)[0].strip().lower()
    return modality == "text" and (media_type.startswith("text/") or media_type in TEXT_MEDIA_TYPES)


def decode_text(data: bytes, atom_id: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadAtom(f"atom {atom_id} is not valid UTF-8: {exc}") from None


def document_text(atom_id: str, data: bytes) -> AtomText:
    """The text a whole atom is embedded from (the model truncates it further)."""
    return AtomText(atom_id, decode_text(data, atom_id)[:MAX_DOCUMENT_CHARS])


def chunk_texts(parent_id: str, parent: bytes, chunks: Sequence[TextChunk]) -> list[AtomText]:
    """The chunks of an AtomChunked event to embed, in document order.

    A chunk equal to its parent was embedded as the document already, and a chunk that
    repeats an earlier one is the same atom: both are skipped. Raises ChunkMismatch for a
    chunk that does not fit its parent.
    """
    texts: list[AtomText] = []
    seen = {parent_id}
    for chunk in chunks:
        if chunk.atom_id not in seen:
            texts.append(AtomText(chunk.atom_id, chunk_text(parent_id, parent, chunk)))
            seen.add(chunk.atom_id)
    return texts


# ---------------------------------------------------------------------------------------
# Emitted events


def embedding_payload(
    atom_id: str, tenant_id: str, model: ModelInfo, vector: list[float]
) -> EmbeddingComputed:
    return EmbeddingComputed(
        atom_id=atom_id,
        tenant_id=tenant_id,
        model_id=model.model_id,
        model_version=model.version,
        dim=model.dim,
        vector=vector,
        normalized=True,
    )


def usage_payload(
    tenant_id: str,
    unit: str,
    quantity: int,
    model: ModelInfo,
    used_at: datetime,
    operation: str = "embed",
) -> UsageRecorded:
    """Metered against the exact model version. Embedding in `tokens` (word pieces) and, for
    the chunks of ingested content, in `chunks` (texts embedded); generation in
    `prompt_tokens` and `completion_tokens`."""
    return UsageRecorded(
        tenant_id=tenant_id,
        operation=operation,
        unit=unit,
        quantity=usage_quantity(quantity),
        resource_id=model.version,
        used_at=used_at,
        dimensions={"device": model.device},
    )

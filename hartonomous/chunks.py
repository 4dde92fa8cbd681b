"""A chunk is a slice of its parent's bytes, named by its own content address. Every consumer
of AtomChunked cuts chunks out with this one rule, and checks each slice against its address,
so a wrong offset can never put one chunk's words under another's id."""

from __future__ import annotations

import hashlib

from hartonomous.events.payloads import TextChunk


class ChunkMismatch(ValueError):
    """The chunk does not fit its parent: it can never be cut out (a poison event)."""


def chunk_text(parent_id: str, parent: bytes, chunk: TextChunk) -> str:
    start, end = chunk.start_byte, chunk.end_byte
    if not 0 <= start <= end <= len(parent):
        raise ChunkMismatch(
            f"chunk {chunk.index} of {parent_id} spans bytes [{start}, {end}),"
            f" outside the parent's {len(parent)} bytes"
        )
    data = parent[start:end]
    digest = hashlib.sha256(data).hexdigest()
    if digest != chunk.atom_id:
        raise ChunkMismatch(
            f"chunk {chunk.index} of {parent_id} at bytes [{start}, {end}): the bytes do not"
            f" hash to {chunk.atom_id}, its atom id, but to {digest}"
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ChunkMismatch(f"chunk {chunk.atom_id} of {parent_id} is not UTF-8: {exc}") from None

"""ReadModelFile: a version's file rebuilt from its atoms, byte for byte.

The manifest lists the parts whose concatenation is the file; a tensor part's atom is the
tensor's canonical encoding, so its description is dropped and its bytes kept. The stream is
hashed as it goes: a file that does not hash to the source's SHA-256 ends in ModelFileDamaged,
never in a silently different file."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from hartonomous.blobs import BlobStore
from hartonomous.tensor_atoms import canonical_prefix
from services.ingest.domain import errors

logger = logging.getLogger(__name__)

PIECE = 1 << 20


async def read_file(blobs: BlobStore, manifest_atom_id: str) -> AsyncIterator[bytes]:
    manifest = json.loads(await blobs.get(manifest_atom_id))
    prefixes = _tensor_prefixes(manifest["tensors"])
    digest, size = hashlib.sha256(), 0
    for part in manifest["parts"]:
        skip = len(prefixes[part["atom"]]) if part["kind"] == "tensor" else 0
        async for piece in _bytes_after(blobs.read(part["atom"]), skip):
            digest.update(piece)
            size += len(piece)
            yield piece
    source = manifest["source"]
    if (digest.hexdigest(), size) != (source["sha256"], source["size"]):
        logger.error(
            "a model file rebuilt from its atoms differs from the one ingested",
            extra={"manifest": manifest_atom_id, "sha256": digest.hexdigest(), "size": size},
        )
        raise errors.ModelFileDamaged("the rebuilt file does not match the one ingested")


def _tensor_prefixes(tensors: list[dict[str, Any]]) -> dict[str, bytes]:
    return {
        t["atom"]: canonical_prefix(t["encoding"], tuple(t["shape"]), t["nbytes"]) for t in tensors
    }


async def _bytes_after(pieces: AsyncIterator[bytes], skip: int) -> AsyncIterator[bytes]:
    """The stream without its first `skip` bytes, in pieces of at most PIECE bytes."""
    async for piece in pieces:
        if skip:
            dropped = min(skip, len(piece))
            piece, skip = piece[dropped:], skip - dropped
        for at in range(0, len(piece), PIECE):
            yield piece[at : at + PIECE]

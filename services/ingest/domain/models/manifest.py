"""A model version's manifest: what the file was (format, size, SHA-256), what the header says
(metadata), every tensor (name, encoding, shape, atom) in the file's listing order, the parts
whose concatenation is the file, and the companion files (config, tokenizer) by path. Its
canonical JSON (sorted keys, no spaces, ASCII) is itself an atom, and that atom's address is the model version's identity."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.ingest.domain.errors import InvalidArgument
from services.ingest.domain.models.layout import FileLayout, Part

VERSION = "hartonomous-model-v1"


@dataclass(frozen=True)
class StoredPart:
    """A part of the file and the atom holding its bytes (a tensor atom's address is that of
    its canonical encoding; a header's or gap's, the SHA-256 of its bytes)."""

    part: Part
    atom_id: str


def manifest(
    layout: FileLayout,
    parts: Sequence[StoredPart],
    source_sha256: str,
    files: Mapping[str, str],
) -> bytes:
    """The manifest's canonical bytes; `files` are the companion files' atoms by path."""
    atoms = {p.part.tensor.name: p.atom_id for p in parts if p.part.tensor is not None}
    document = {
        "manifest": VERSION,
        "format": layout.format,
        "source": {"sha256": source_sha256, "size": layout.size},
        "architecture": architecture(layout),
        "metadata": plain(layout.metadata),
        "tensors": [
            {
                "name": t.name,
                "encoding": t.encoding,
                "shape": list(t.shape),
                "nbytes": t.nbytes,
                "atom": atoms[t.name],
            }
            for t in layout.tensors
        ],
        "parts": [{"kind": p.part.kind, "length": p.part.length, "atom": p.atom_id} for p in parts],
        "files": dict(files),
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def address(manifest_bytes: bytes) -> str:
    return hashlib.sha256(manifest_bytes).hexdigest()


def architecture(layout: FileLayout) -> str | None:
    found = layout.metadata.get("general.architecture", layout.metadata.get("architecture"))
    return str(found) if found is not None else None


def plain(value: Any) -> Any:
    """Metadata as JSON allows it: non-finite floats as text (a header may hold them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise InvalidArgument(f"the header holds a value JSON cannot carry: {value!r}")

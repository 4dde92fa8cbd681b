"""A model file as parts in file order: its header, its tensors, and whatever lies between
them (alignment padding, usually zeros). The parts cover the file exactly once, so the file is
their concatenation: that is what makes reassembly byte-exact."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from hartonomous.tensor_atoms import canonical_prefix
from services.ingest.domain.errors import InvalidArgument
from services.ingest.domain.models.tensors import TensorSpan

Format = Literal["safetensors", "gguf"]


@dataclass(frozen=True)
class Part:
    kind: Literal["header", "tensor", "gap"]
    offset: int
    length: int
    tensor: TensorSpan | None = None


@dataclass(frozen=True)
class FileLayout:
    format: Format
    size: int  # of the whole file
    header_length: int  # bytes [0, header_length) are the header
    tensors: tuple[TensorSpan, ...]  # in the file's own listing order
    # What the header says about the model: safetensors' __metadata__, GGUF's key-values
    # (long arrays such as the vocabulary summarised by their length).
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def parts(self) -> list[Part]:
        """Header, tensors by offset and the gaps between, covering [0, size) exactly."""
        parts = [Part("header", 0, self.header_length)]
        at = self.header_length
        for tensor in sorted(self.tensors, key=lambda t: t.offset):
            if tensor.offset < at:
                raise InvalidArgument(
                    f"tensor {tensor.name!r} at byte {tensor.offset} overlaps what comes before"
                    f" it (up to byte {at})"
                )
            if tensor.offset > at:
                parts.append(Part("gap", at, tensor.offset - at))
            parts.append(Part("tensor", tensor.offset, tensor.nbytes, tensor))
            at = tensor.end
        if at > self.size:
            raise InvalidArgument(
                f"the header places tensor data up to byte {at}, but the file has {self.size}"
            )
        if at < self.size:
            parts.append(Part("gap", at, self.size - at))
        return parts


def unique_names(tensors: list[TensorSpan]) -> tuple[TensorSpan, ...]:
    seen: set[str] = set()
    for tensor in tensors:
        if tensor.name in seen:
            raise InvalidArgument(f"tensor {tensor.name!r} is listed twice")
        seen.add(tensor.name)
    return tuple(tensors)


def atom_prefix(part: Part) -> bytes:
    """What the part's atom holds before the part's bytes: a tensor's canonical encoding
    (tensors.py) starts with its description; a header or gap is its bytes alone. An atom's
    address is the SHA-256 of prefix and bytes, as the blob store computes it."""
    t = part.tensor
    return canonical_prefix(t.encoding, t.shape, t.nbytes) if t is not None else b""

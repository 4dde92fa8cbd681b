"""Tensor encodings: what each safetensors dtype takes per element (GGML types and their
blocks are the kernel's, hartonomous/gguf.py), so a header's claims can be checked against the
file. The canonical encoding of a tensor atom is the kernel's too (hartonomous/tensor_atoms.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from services.ingest.domain.errors import InvalidArgument

# safetensors dtype -> bytes per element.
SAFETENSORS_DTYPES = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}


@dataclass(frozen=True)
class TensorSpan:
    """One tensor of a file: its name, encoding, shape, and where its bytes are."""

    name: str
    encoding: str
    shape: tuple[int, ...]
    offset: int  # from the start of the file
    nbytes: int

    @property
    def end(self) -> int:
        return self.offset + self.nbytes


def safetensors_nbytes(name: str, dtype: str, shape: tuple[int, ...]) -> int:
    if dtype not in SAFETENSORS_DTYPES:
        raise InvalidArgument(f"tensor {name!r} has an unknown dtype {dtype!r}")
    return math.prod(shape) * SAFETENSORS_DTYPES[dtype]

"""Tensor encodings: what each safetensors dtype and GGML type takes per element or block,
so a header's claims can be checked against the file. The canonical encoding of a tensor atom
is the kernel's (hartonomous/tensor_atoms.py)."""

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
class GgmlType:
    name: str
    block_size: int  # elements per block
    type_size: int  # bytes per block


_QK_K = 256
# GGML type id -> its encoding; the block layouts are ggml's (ggml-common.h).
GGML_TYPES = {
    0: GgmlType("F32", 1, 4),
    1: GgmlType("F16", 1, 2),
    2: GgmlType("Q4_0", 32, 2 + 16),
    3: GgmlType("Q4_1", 32, 2 + 2 + 16),
    6: GgmlType("Q5_0", 32, 2 + 4 + 16),
    7: GgmlType("Q5_1", 32, 2 + 2 + 4 + 16),
    8: GgmlType("Q8_0", 32, 2 + 32),
    9: GgmlType("Q8_1", 32, 4 + 4 + 32),
    10: GgmlType("Q2_K", _QK_K, 2 + 2 + _QK_K // 16 + _QK_K // 4),
    11: GgmlType("Q3_K", _QK_K, 2 + _QK_K // 4 + _QK_K // 8 + 12),
    12: GgmlType("Q4_K", _QK_K, 2 + 2 + _QK_K // 2 + 12),
    13: GgmlType("Q5_K", _QK_K, 2 + 2 + _QK_K // 2 + _QK_K // 8 + 12),
    14: GgmlType("Q6_K", _QK_K, 2 + _QK_K // 2 + _QK_K // 4 + _QK_K // 16),
    15: GgmlType("Q8_K", _QK_K, 4 + _QK_K + _QK_K // 8),
    24: GgmlType("I8", 1, 1),
    25: GgmlType("I16", 1, 2),
    26: GgmlType("I32", 1, 4),
    27: GgmlType("I64", 1, 8),
    28: GgmlType("F64", 1, 8),
    30: GgmlType("BF16", 1, 2),
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


def ggml_nbytes(name: str, type_id: int, shape: tuple[int, ...]) -> tuple[str, int]:
    """The encoding's name and the tensor's size; `shape` as GGUF lists it, innermost first
    (blocks run along that dimension)."""
    kind = GGML_TYPES.get(type_id)
    if kind is None:
        raise InvalidArgument(f"tensor {name!r} has an unsupported GGML type {type_id}")
    elements = math.prod(shape)
    if shape and shape[0] % kind.block_size:
        raise InvalidArgument(
            f"tensor {name!r}: its rows of {shape[0]} are not whole {kind.name} blocks"
            f" of {kind.block_size}"
        )
    return kind.name, elements // kind.block_size * kind.type_size

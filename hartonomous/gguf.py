"""GGUF (versions 2 and 3): the header and the GGML block encodings. The kernel's one reader:
ingest reads a file's layout with it (every length checked against the file), inference a
model's metadata (vocabulary, merges, chat template) and its tensors' encodings.

The layout: magic, version, tensor and key-value counts, the key-values, the tensor infos
(name, dimensions innermost first, GGML type, offset within the data), then the data from the
next multiple of `general.alignment` (default 32). The header is read through `read(n)`, a
caller's function returning the next n bytes (fewer at the end of the file), so a header that
lies about its lengths fails on the file's size, never on memory."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32

Read = Callable[[int], bytes]


class GgufError(ValueError):
    """The bytes are not a GGUF file this reader accepts; the message says why."""


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
class TensorInfo:
    name: str
    shape: tuple[int, ...]  # innermost first
    type_id: int
    offset: int  # within the data section


@dataclass(frozen=True)
class GgufHeader:
    metadata: dict[str, Any]
    tensors: list[TensorInfo]
    alignment: int
    data_start: int  # where the data section starts in the file


def ggml_nbytes(name: str, type_id: int, shape: tuple[int, ...]) -> tuple[str, int]:
    """The encoding's name and the tensor's size (blocks run along the innermost dimension)."""
    kind = GGML_TYPES.get(type_id)
    if kind is None:
        raise GgufError(f"tensor {name!r} has an unsupported GGML type {type_id}")
    elements = math.prod(shape)
    if shape and shape[0] % kind.block_size:
        raise GgufError(
            f"tensor {name!r}: its rows of {shape[0]} are not whole {kind.name} blocks"
            f" of {kind.block_size}"
        )
    return kind.name, elements // kind.block_size * kind.type_size


def read_header(read: Read, size: int, long_array: int | None = None) -> GgufHeader:
    """`long_array`: arrays longer than this (a vocabulary) are summarised as
    {"array_of": type, "length": n} instead of read into lists; None keeps them all."""
    cursor = _Cursor(read, size, long_array)
    if cursor.take(4, "the magic") != MAGIC:
        raise GgufError("not a GGUF file: it does not start with GGUF")
    version = cursor.u32("the version")
    if version not in (2, 3):
        raise GgufError(f"GGUF version {version} is not supported (2 and 3 are)")
    tensor_count = cursor.u64("the tensor count")
    kv_count = cursor.u64("the key-value count")
    metadata: dict[str, Any] = {}
    for i in range(kv_count):
        key = cursor.string(f"key {i}")
        if key in metadata:
            raise GgufError(f"the GGUF key {key!r} is listed twice")
        metadata[key] = cursor.value(cursor.u32(f"the type of {key}"), key)
    infos = [_info(cursor, i) for i in range(tensor_count)]
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise GgufError(f"general.alignment {alignment!r} is not a power of two")
    for info in infos:
        if info.offset % alignment:
            raise GgufError(f"tensor {info.name!r} is not aligned to {alignment} bytes")
    data_start = -(-cursor.at // alignment) * alignment
    return GgufHeader(metadata, infos, alignment, data_start)


# GGUF value type -> struct format of a scalar of it.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"}
_SCALARS |= {10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Cursor:
    def __init__(self, read: Read, size: int, long_array: int | None) -> None:
        self._read = read
        self._long_array = long_array
        self.size = size
        self.at = 0

    def take(self, n: int, what: str) -> bytes:
        if n > self.size - self.at:
            raise GgufError(
                f"the GGUF header says {what} takes {n} bytes at byte {self.at}, past the end"
                f" of the file ({self.size} bytes)"
            )
        data = self._read(n)
        if len(data) != n:
            raise GgufError(f"the file ended inside the GGUF header ({what})")
        self.at += n
        return data

    def scalar(self, fmt: str, what: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what))[0]

    def u32(self, what: str) -> int:
        return int(self.scalar("<I", what))

    def u64(self, what: str) -> int:
        return int(self.scalar("<Q", what))

    def string(self, what: str) -> str:
        raw = self.take(self.u64(what), what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GgufError(f"{what} in the GGUF header is not UTF-8") from None

    def value(self, kind: int, what: str) -> Any:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind], what)
        if kind == _STRING:
            return self.string(what)
        if kind == _ARRAY:
            inner, count = self.u32(what), self.u64(what)
            if inner == _ARRAY and count:
                raise GgufError(f"{what}: arrays of arrays are not supported")
            items = [self.value(inner, what) for _ in range(count)]
            if self._long_array is not None and count > self._long_array:
                return {"array_of": inner, "length": count}
            return items
        raise GgufError(f"{what} has an unknown GGUF value type {kind}")


def _info(cursor: _Cursor, i: int) -> TensorInfo:
    name = cursor.string(f"the name of tensor {i}")
    dims = cursor.u32(f"the dimensions of {name}")
    if dims > 8:
        raise GgufError(f"tensor {name!r} has {dims} dimensions (GGML allows 4)")
    shape = tuple(cursor.u64(f"a dimension of {name}") for _ in range(dims))
    return TensorInfo(
        name, shape, cursor.u32(f"the type of {name}"), cursor.u64(f"the offset of {name}")
    )

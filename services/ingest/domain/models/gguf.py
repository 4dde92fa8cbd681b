"""The GGUF layout (versions 2 and 3): magic, version, tensor and key-value counts, the
key-values, the tensor infos (name, dimensions innermost first, GGML type, offset within the
data), then the data from the next multiple of `general.alignment` (default 32).

The header is read through `read(n)`, a caller's function returning the next n bytes (fewer at
the end of the file), so a header that lies about its lengths fails on the file's size, never
on memory: no length is trusted beyond the bytes the file has left."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any

from services.ingest.domain.errors import InvalidArgument
from services.ingest.domain.models.layout import FileLayout, unique_names
from services.ingest.domain.models.tensors import TensorSpan, ggml_nbytes

MAGIC = b"GGUF"
DEFAULT_ALIGNMENT = 32
LONG_ARRAY = 16  # longer arrays (the vocabulary) are summarised in the metadata

Read = Callable[[int], bytes]

# GGUF value type -> struct format of a scalar of it.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?"}
_SCALARS |= {10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9


class _Cursor:
    def __init__(self, read: Read, size: int) -> None:
        self._read = read
        self.size = size
        self.at = 0

    def take(self, n: int, what: str) -> bytes:
        if n > self.size - self.at:
            raise InvalidArgument(
                f"the GGUF header says {what} takes {n} bytes at byte {self.at}, past the end"
                f" of the file ({self.size} bytes)"
            )
        data = self._read(n)
        if len(data) != n:
            raise InvalidArgument(f"the file ended inside the GGUF header ({what})")
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
            raise InvalidArgument(f"{what} in the GGUF header is not UTF-8") from None

    def value(self, kind: int, what: str) -> Any:
        if kind in _SCALARS:
            return self.scalar(_SCALARS[kind], what)
        if kind == _STRING:
            return self.string(what)
        if kind == _ARRAY:
            inner, count = self.u32(what), self.u64(what)
            if inner == _ARRAY and count:
                raise InvalidArgument(f"{what}: arrays of arrays are not supported")
            items = [self.value(inner, what) for _ in range(count)]
            return items if count <= LONG_ARRAY else {"array_of": inner, "length": count}
        raise InvalidArgument(f"{what} has an unknown GGUF value type {kind}")


def read_layout(read: Read, size: int) -> FileLayout:
    cursor = _Cursor(read, size)
    if cursor.take(4, "the magic") != MAGIC:
        raise InvalidArgument("not a GGUF file: it does not start with GGUF")
    version = cursor.u32("the version")
    if version not in (2, 3):
        raise InvalidArgument(f"GGUF version {version} is not supported (2 and 3 are)")
    tensor_count = cursor.u64("the tensor count")
    kv_count = cursor.u64("the key-value count")
    metadata: dict[str, Any] = {}
    for i in range(kv_count):
        key = cursor.string(f"key {i}")
        if key in metadata:
            raise InvalidArgument(f"the GGUF key {key!r} is listed twice")
        metadata[key] = cursor.value(cursor.u32(f"the type of {key}"), key)
    infos = [_info(cursor, i) for i in range(tensor_count)]
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or alignment <= 0 or alignment & (alignment - 1):
        raise InvalidArgument(f"general.alignment {alignment!r} is not a power of two")
    data_start = -(-cursor.at // alignment) * alignment
    tensors = []
    for name, shape, type_id, offset in infos:
        if offset % alignment:
            raise InvalidArgument(f"tensor {name!r} is not aligned to {alignment} bytes")
        encoding, nbytes = ggml_nbytes(name, type_id, shape)
        tensors.append(TensorSpan(name, encoding, shape, data_start + offset, nbytes))
    return FileLayout("gguf", size, min(data_start, size), unique_names(tensors), metadata=metadata)


def _info(cursor: _Cursor, i: int) -> tuple[str, tuple[int, ...], int, int]:
    name = cursor.string(f"the name of tensor {i}")
    dims = cursor.u32(f"the dimensions of {name}")
    if dims > 8:
        raise InvalidArgument(f"tensor {name!r} has {dims} dimensions (GGML allows 4)")
    shape = tuple(cursor.u64(f"a dimension of {name}") for _ in range(dims))
    return name, shape, cursor.u32(f"the type of {name}"), cursor.u64(f"the offset of {name}")

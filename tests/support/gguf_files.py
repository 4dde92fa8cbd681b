"""Small GGUF files for tests, written from the format's description (and wrongly on
request): the magic, version, counts, key-values, tensor infos, padding, then the data."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

STRING, ARRAY, U32 = 8, 9, 4


@dataclass(frozen=True)
class Tensor:
    name: str
    dims: tuple[int, ...]  # innermost first, as GGUF lists them
    type_id: int
    data: bytes


def _string(text: str) -> bytes:
    raw = text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _value(kind: int, value: object) -> bytes:
    if kind == STRING:
        assert isinstance(value, str)
        return _string(value)
    if kind == U32:
        assert isinstance(value, int)
        return struct.pack("<I", value)
    if kind == ARRAY:
        assert isinstance(value, list)
        return struct.pack("<IQ", STRING, len(value)) + b"".join(_string(v) for v in value)
    raise ValueError(kind)


def gguf_bytes(
    tensors: list[Tensor],
    metadata: Sequence[tuple[str, int, object]] = (),
    *,
    alignment: int = 32,
    magic: bytes = b"GGUF",
    version: int = 3,
) -> bytes:
    head = magic + struct.pack("<IQQ", version, len(tensors), len(metadata))
    for key, kind, value in metadata:
        head += _string(key) + struct.pack("<I", kind) + _value(kind, value)
    offset, data = 0, b""
    for t in tensors:
        head += _string(t.name) + struct.pack("<I", len(t.dims))
        head += b"".join(struct.pack("<Q", d) for d in t.dims)
        head += struct.pack("<IQ", t.type_id, offset)
        padded = t.data + b"\0" * (-len(t.data) % alignment)
        data += padded
        offset += len(padded)
    head += b"\0" * (-len(head) % alignment)
    return head + data

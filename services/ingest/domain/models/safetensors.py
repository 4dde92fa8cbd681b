"""The safetensors layout: an 8-byte little-endian header length, a JSON header naming every
tensor's dtype, shape and [begin, end) offsets within the data that follows, then the data."""

from __future__ import annotations

import json
import struct
from typing import Any

from services.ingest.domain.errors import InvalidArgument
from services.ingest.domain.models.layout import FileLayout, unique_names
from services.ingest.domain.models.tensors import TensorSpan, safetensors_nbytes

LENGTH = struct.Struct("<Q")
MAX_HEADER = 100 * 1024 * 1024  # safetensors' own limit


def header_length(first8: bytes, size: int) -> int:
    """The JSON header's length, from the file's first 8 bytes."""
    if len(first8) < LENGTH.size:
        raise InvalidArgument("not a safetensors file: shorter than its 8-byte header length")
    (length,) = LENGTH.unpack(first8[: LENGTH.size])
    if length > MAX_HEADER or LENGTH.size + length > size:
        raise InvalidArgument(
            f"not a safetensors file: a header of {length} bytes in a file of {size}"
        )
    return int(length)


def read_layout(header: bytes, size: int) -> FileLayout:
    """`header`: the file's first 8 + header_length bytes."""
    length = header_length(header, size)
    try:
        parsed = json.loads(header[LENGTH.size : LENGTH.size + length], object_pairs_hook=_pairs)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgument(f"the safetensors header is not JSON: {exc}") from None
    if not isinstance(parsed, dict):
        raise InvalidArgument("the safetensors header is not a JSON object")
    metadata = parsed.pop("__metadata__", None) or {}
    data_start = LENGTH.size + length
    tensors = [_span(name, entry, data_start) for name, entry in parsed.items()]
    return FileLayout(
        "safetensors", size, data_start, unique_names(tensors), metadata=dict(metadata)
    )


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        twice = sorted({k for k in keys if keys.count(k) > 1})
        raise InvalidArgument(f"tensor {twice[0]!r} is listed twice")
    return dict(pairs)


def _span(name: str, entry: Any, data_start: int) -> TensorSpan:
    try:
        dtype = str(entry["dtype"])
        shape = tuple(int(d) for d in entry["shape"])
        begin, end = (int(o) for o in entry["data_offsets"])
    except (TypeError, KeyError, ValueError):
        raise InvalidArgument(
            f"tensor {name!r}: dtype, shape and data_offsets [begin, end] are required"
        ) from None
    if any(d < 0 for d in shape) or not 0 <= begin <= end:
        raise InvalidArgument(f"tensor {name!r}: a negative dimension or offset")
    nbytes = safetensors_nbytes(name, dtype, shape)
    if end - begin != nbytes:
        raise InvalidArgument(
            f"tensor {name!r}: {dtype} {list(shape)} is {nbytes} bytes, but its offsets"
            f" span {end - begin}"
        )
    return TensorSpan(name, dtype, shape, data_start + begin, nbytes)

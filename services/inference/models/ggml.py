"""GGML tensor encodings decoded to float32, as ggml's reference dequantizers do
(ggml-quants.c): a block of 32 values shares a scale `d` (and, for Q4_1, a minimum `m`).

- Q8_0: d (f16), then 32 int8 q: x = d * q
- Q4_1: d (f16), m (f16), then 16 bytes: the low nibbles are values 0-15, the high nibbles
  values 16-31: x = d * q + m

GGUF lists dimensions innermost first; the array returned has them outermost first (numpy's
order), so a [in, out] GGUF matrix comes back as [out, in]."""

from __future__ import annotations

import numpy as np

from hartonomous.gguf import GGML_TYPES

_BLOCK = 32


def dequantize(encoding: str, shape: tuple[int, ...], data: bytes) -> np.ndarray:
    numpy_shape = tuple(reversed(shape))
    raw = np.frombuffer(data, dtype=np.uint8)
    if encoding == "F32":
        values = raw.view("<f4")
    elif encoding == "F16":
        values = raw.view("<f2").astype(np.float32)
    elif encoding == "Q8_0":
        values = _q8_0(raw)
    elif encoding == "Q4_1":
        values = _q4_1(raw)
    else:
        raise ValueError(f"no dequantizer for {encoding}")
    return values.reshape(numpy_shape).astype(np.float32, copy=False)


def _blocks(raw: np.ndarray, encoding: str) -> np.ndarray:
    size = next(t.type_size for t in GGML_TYPES.values() if t.name == encoding)
    if raw.size % size:
        raise ValueError(f"{raw.size} bytes are not whole {encoding} blocks of {size}")
    return raw.reshape(-1, size)


def _q8_0(raw: np.ndarray) -> np.ndarray:
    blocks = _blocks(raw, "Q8_0")
    d = blocks[:, :2].copy().view("<f2").astype(np.float32)
    q = blocks[:, 2:].view(np.int8).astype(np.float32)
    return (d * q).reshape(-1)


def _q4_1(raw: np.ndarray) -> np.ndarray:
    blocks = _blocks(raw, "Q4_1")
    d = blocks[:, 0:2].copy().view("<f2").astype(np.float32)
    m = blocks[:, 2:4].copy().view("<f2").astype(np.float32)
    packed = blocks[:, 4:]
    q = np.concatenate([packed & 0x0F, packed >> 4], axis=1).astype(np.float32)
    assert q.shape[1] == _BLOCK
    return (d * q + m).reshape(-1)

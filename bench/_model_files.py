"""Model files for the model benchmark (bench/models.py) and the model ingest tests: a synthetic
safetensors file of any size, written tensor by tensor (never whole in memory); a GGUF file's
second version that differs from the first in one tensor; and an upload as IngestModel
messages."""

from __future__ import annotations

import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from hartonomous.v1 import ingest_pb2
from services.ingest.domain.models import gguf
from services.ingest.domain.models.tensors import TensorSpan

MIB = 1 << 20
PIECE = MIB  # bytes per IngestModel message, as a client would send them


def write_safetensors(out: BinaryIO, tensors: int, tensor_mib: int) -> None:
    """`tensors` F32 tensors of `tensor_mib` MiB each, all different: tensor i repeats a 1 MiB
    block drawn from a generator seeded with i, which is cheap to write at gigabytes."""
    nbytes = tensor_mib * MIB
    header = {
        f"t{i:03d}": {
            "dtype": "F32",
            "shape": [tensor_mib * 1024, 256],
            "data_offsets": [i * nbytes, (i + 1) * nbytes],
        }
        for i in range(tensors)
    }
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads its header to 8 bytes with spaces
    out.write(struct.pack("<Q", len(raw)) + raw)
    for i in range(tensors):
        block = np.random.default_rng(i).random(MIB // 4, dtype=np.float32).tobytes()
        for _ in range(tensor_mib):
            out.write(block)


def one_tensor_changed(data: bytes, encoding: str) -> tuple[bytes, TensorSpan]:
    """The GGUF file `data` with the first byte of its first `encoding` tensor flipped: a second
    version that shares every other tensor with the first. Returns it and the tensor."""
    layout = gguf.read_layout(io.BytesIO(data).read, len(data))
    tensor = next(t for t in layout.tensors if t.encoding == encoding)
    changed = bytearray(data)
    changed[tensor.offset] ^= 0xFF
    return bytes(changed), tensor


def model_upload(
    path: Path, header: ingest_pb2.ModelHeader
) -> Iterator[ingest_pb2.IngestModelRequest]:
    """The IngestModel messages for the file at `path`, read a piece at a time."""
    yield ingest_pb2.IngestModelRequest(header=header)
    with path.open("rb") as source:
        while piece := source.read(PIECE):
            yield ingest_pb2.IngestModelRequest(data=piece)

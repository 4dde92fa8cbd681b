"""The canonical encoding of a tensor atom: its address is the SHA-256 of these bytes.

Version 1, for another implementation to reproduce an address:

    b"hartonomous-tensor-v1\\n"
    + encoding.encode("ascii") + b"\\n"      e.g. F32, BF16, Q4_1 (the file's own name for it)
    + b",".join(str(d).encode() for d in shape) + b"\\n"   the dimensions as the file lists
                                                         them (safetensors: outermost first;
                                                         GGUF: innermost first); empty for a
                                                         scalar
    + str(len(data)).encode() + b"\\n"
    + data                                    the tensor's bytes exactly as stored in the file

The atom's bytes are that encoding itself, so its address is the SHA-256 of what the blob
store holds, as for every other atom. A quantized tensor is kept in its stored encoding
(blocks and all). Ingest writes these atoms; whoever loads a model reads them back here."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

CANONICAL_PREFIX = b"hartonomous-tensor-v1\n"


@dataclass(frozen=True)
class TensorAtom:
    encoding: str
    shape: tuple[int, ...]
    data: bytes


def canonical_prefix(encoding: str, shape: tuple[int, ...], nbytes: int) -> bytes:
    """What a tensor atom holds before the tensor's bytes."""
    dims = ",".join(str(d) for d in shape)
    return CANONICAL_PREFIX + f"{encoding}\n{dims}\n{nbytes}\n".encode("ascii")


def tensor_address(encoding: str, shape: tuple[int, ...], data: bytes) -> str:
    return hashlib.sha256(canonical_prefix(encoding, shape, len(data)) + data).hexdigest()


def parse_tensor_atom(atom: bytes) -> TensorAtom:
    """A tensor atom's description and bytes; ValueError when the bytes are not one."""
    if not atom.startswith(CANONICAL_PREFIX):
        raise ValueError("not a tensor atom")
    lines = atom[len(CANONICAL_PREFIX) :].split(b"\n", 3)
    if len(lines) != 4:
        raise ValueError("a tensor atom's description is cut short")
    encoding, dims, nbytes, data = lines
    if int(nbytes) != len(data):
        raise ValueError(f"a tensor atom declares {int(nbytes)} bytes but holds {len(data)}")
    shape = tuple(int(d) for d in dims.split(b",")) if dims else ()
    return TensorAtom(encoding.decode("ascii"), shape, data)


def tensor_bytes(atom: bytes) -> bytes:
    """The tensor's bytes in a tensor atom."""
    return parse_tensor_atom(atom).data

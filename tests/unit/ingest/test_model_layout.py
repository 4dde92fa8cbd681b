"""Model files as parts: the header, every tensor and the gaps between cover the file exactly,
so the parts' atoms reassemble it byte for byte; a tensor's address is that of its canonical
encoding (the same tensor in another file or version has the same one); a file that lies
about itself is refused with a clear reason."""

from __future__ import annotations

import hashlib
import io
import json
import struct
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from hartonomous.modelfiles import minilm_model_dir, smollm2_gguf
from hartonomous.tensor_atoms import canonical_prefix, tensor_address, tensor_bytes
from services.ingest.domain.errors import InvalidArgument
from services.ingest.domain.models import gguf, safetensors
from services.ingest.domain.models.layout import FileLayout, atom_prefix
from services.ingest.domain.models.manifest import StoredPart, address, manifest
from tests.support.gguf_files import ARRAY, STRING, U32, Tensor, gguf_bytes

Q4_1, F32 = 3, 0


def layout_of(data: bytes) -> FileLayout:
    if data[:4] == b"GGUF":
        return gguf.read_layout(io.BytesIO(data).read, len(data))
    length = safetensors.header_length(data[:8], len(data))
    return safetensors.read_layout(data[: 8 + length], len(data))


def decompose(data: bytes) -> tuple[bytes, dict[str, bytes]]:
    """The manifest and the atoms (address -> bytes) of a file held in memory."""
    layout = layout_of(data)
    atoms: dict[str, bytes] = {}
    stored = []
    for part in layout.parts():
        atom = atom_prefix(part) + data[part.offset : part.offset + part.length]
        atom_id = hashlib.sha256(atom).hexdigest()
        atoms[atom_id] = atom
        stored.append(StoredPart(part, atom_id))
    document = manifest(layout, stored, hashlib.sha256(data).hexdigest(), {})
    return document, atoms


def reassemble(document: bytes, atoms: dict[str, bytes]) -> bytes:
    return b"".join(
        tensor_bytes(atoms[p["atom"]]) if p["kind"] == "tensor" else atoms[p["atom"]]
        for p in json.loads(document)["parts"]
    )


def tensors(document: bytes) -> dict[str, str]:
    return {t["name"]: t["atom"] for t in json.loads(document)["tensors"]}


def safetensors_file(**arrays: np.ndarray) -> bytes:
    return save(arrays, metadata={"format": "np"})


def test_a_safetensors_file_reassembles_and_shared_tensors_share_atoms() -> None:
    rng = np.random.default_rng(0)
    shared = rng.standard_normal((64, 32)).astype(np.float32)
    v1 = safetensors_file(embed=shared, head=rng.standard_normal(32).astype(np.float16))
    v2 = safetensors_file(embed=shared, head=rng.standard_normal(32).astype(np.float16))
    (m1, a1), (m2, a2) = decompose(v1), decompose(v2)
    assert reassemble(m1, a1) == v1 and reassemble(m2, a2) == v2
    assert tensors(m1)["embed"] == tensors(m2)["embed"]
    assert tensors(m1)["head"] != tensors(m2)["head"]
    assert address(m1) != address(m2)
    expected = tensor_address("F32", (64, 32), shared.tobytes())
    assert tensors(m1)["embed"] == expected
    assert (
        expected
        == hashlib.sha256(canonical_prefix("F32", (64, 32), 8192) + shared.tobytes()).hexdigest()
    )
    assert json.loads(m1)["metadata"] == {"format": "np"}


def test_the_bundled_minilm_reassembles_byte_for_byte() -> None:
    data = (minilm_model_dir() / "model.safetensors").read_bytes()
    document, atoms = decompose(data)
    assert hashlib.sha256(reassemble(document, atoms)).digest() == hashlib.sha256(data).digest()
    listed = json.loads(document)
    assert len(listed["tensors"]) == 104 and listed["format"] == "safetensors"
    assert listed["source"] == {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}


def test_a_gguf_file_keeps_quantized_tensors_as_they_are_stored() -> None:
    block = bytes(range(20))  # one Q4_1 block: 32 weights in 20 bytes
    data = gguf_bytes(
        [Tensor("blk.0.w", (32, 2), Q4_1, block * 2), Tensor("norm", (3,), F32, b"\1" * 12)],
        [("general.architecture", STRING, "llama"), ("general.alignment", U32, 32)],
    )
    document, atoms = decompose(data)
    assert reassemble(document, atoms) == data
    listed = json.loads(document)
    assert listed["architecture"] == "llama"
    [w, norm] = listed["tensors"]
    assert (w["encoding"], w["shape"], w["nbytes"]) == ("Q4_1", [32, 2], 40)
    assert tensor_bytes(atoms[w["atom"]]) == block * 2
    assert w["atom"] == tensor_address("Q4_1", (32, 2), block * 2)
    assert (norm["encoding"], norm["nbytes"]) == ("F32", 12)


def test_smollm2_reassembles_and_one_changed_tensor_is_the_only_new_atom(tmp_path: Path) -> None:
    data = smollm2_gguf().read_bytes()
    document, atoms = decompose(data)
    assert hashlib.sha256(reassemble(document, atoms)).digest() == hashlib.sha256(data).digest()
    listed = json.loads(document)
    assert listed["architecture"] == "llama" and len(listed["tensors"]) == 272
    assert {t["encoding"] for t in listed["tensors"]} >= {"Q4_1", "F32"}
    # A second version: one tensor's bytes altered in place (the header is unchanged).
    first = next(t for t in layout_of(data).tensors if t.encoding == "Q4_1")
    changed = bytearray(data)
    changed[first.offset] ^= 0xFF
    document2, atoms2 = decompose(bytes(changed))
    new = set(atoms2) - set(atoms)
    assert new == {tensors(document2)[first.name]}
    assert sum(len(tensor_bytes(atoms2[a])) for a in new) == first.nbytes


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x05\0\0\0\0\0\0\0{}", "a header of 5 bytes in a file of 10"),
        (b"\x02\0\0\0\0\0\0\0[]", "not a JSON object"),
        (b"\x02\0\0\0\0\0\0\0{x", "not JSON"),
        (b"\x02\0\0", "shorter than its 8-byte header length"),
    ],
)
def test_a_broken_safetensors_header_is_refused(data: bytes, reason: str) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        layout_of(data)


def _with_header(header: dict[str, object], payload: bytes) -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + payload


@pytest.mark.parametrize(
    ("header", "payload", "reason"),
    [
        (
            {"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}},
            b"\0" * 8,
            "is 16 bytes, but its offsets span 8",
        ),
        (
            {"w": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 4]}},
            b"\0" * 4,
            "unknown dtype 'Q9'",
        ),
        ({"w": {"dtype": "U8", "shape": [8], "data_offsets": [0, 8]}}, b"\0" * 4, "up to byte"),
        ({"w": {"dtype": "U8", "shape": [4]}}, b"\0" * 4, "data_offsets"),
        (
            {
                "a": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]},
                "b": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]},
            },
            b"\0" * 6,
            "overlaps",
        ),
    ],
)
def test_a_safetensors_header_that_lies_is_refused(
    header: dict[str, object], payload: bytes, reason: str
) -> None:
    with pytest.raises(InvalidArgument, match=reason):
        layout_of(_with_header(header, payload)).parts()


def test_a_tensor_listed_twice_is_refused() -> None:
    raw = b'{"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}'
    with pytest.raises(InvalidArgument, match="'w' is listed twice"):
        layout_of(struct.pack("<Q", len(raw)) + raw + b"\0")
    twice = gguf_bytes([Tensor("w", (1,), F32, b"\0" * 4), Tensor("w", (1,), F32, b"\0" * 4)])
    with pytest.raises(InvalidArgument, match="'w' is listed twice"):
        layout_of(twice)


def test_a_gguf_header_that_lies_is_refused() -> None:
    good = gguf_bytes([Tensor("w", (32,), Q4_1, b"\0" * 20)], [("tokens", ARRAY, ["a", "b"])])
    with pytest.raises(InvalidArgument, match="not a GGUF file"):
        gguf.read_layout(io.BytesIO(b"GGUX" + good[4:]).read, len(good))
    with pytest.raises(InvalidArgument, match="version 1 is not supported"):
        layout_of(good[:4] + struct.pack("<I", 1) + good[8:])
    with pytest.raises(InvalidArgument, match="past the end of the file"):
        layout_of(good[:40])  # cut inside the key-values
    huge = good[:24] + struct.pack("<Q", 2**62) + good[32:]  # the first key's length
    with pytest.raises(InvalidArgument, match="past the end of the file"):
        layout_of(huge)
    with pytest.raises(InvalidArgument, match="unsupported GGML type 99"):
        layout_of(gguf_bytes([Tensor("w", (4,), 99, b"\0" * 4)]))
    with pytest.raises(InvalidArgument, match="not whole Q4_1 blocks"):
        layout_of(gguf_bytes([Tensor("w", (31,), Q4_1, b"\0" * 20)]))
    with pytest.raises(InvalidArgument, match="up to byte"):
        layout_of(gguf_bytes([Tensor("w", (64,), Q4_1, b"\0" * 20)])).parts()

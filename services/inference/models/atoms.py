"""The platform's own models loaded from their tensor atoms: the live version of a system
tenant model is asked of ingest (GetModel), its manifest and every atom it lists are read from
the blob store, each checked against its address, and the tensors are decoded from their
canonical encoding (hartonomous/tensor_atoms.py). A model's version is its manifest's
address. MiniLM's config and tokenizer are companion files; a GGUF model's are in its header
atom."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import logging
import time
from typing import Any

import grpc
import numpy as np

from hartonomous import gguf
from hartonomous.blobs import BlobStore
from hartonomous.modelfiles import MINILM_COMPANIONS, SYSTEM_TENANT
from hartonomous.tensor_atoms import parse_tensor_atom
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc
from services.inference.models.llama_model import LlamaModel, build_llama
from services.inference.models.minilm import MiniLM, build_minilm

logger = logging.getLogger(__name__)

# safetensors dtype -> numpy (the ones a BERT checkpoint holds).
DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8"}
POLL_S = 0.5


class ModelUnavailable(RuntimeError):
    """The model was not ingested within the wait, or its atoms do not hold what they claim."""


async def live_version(channel: grpc.aio.Channel, name: str, wait_s: float) -> str:
    """The manifest address of the system tenant's live `name`, waiting up to `wait_s` for
    ingest to store and promote it (it does on its first start)."""
    stub: Any = ingest_pb2_grpc.IngestStub(channel)  # type: ignore[no-untyped-call]
    request = ingest_pb2.GetModelRequest(tenant_id=SYSTEM_TENANT, name=name)
    deadline = time.monotonic() + wait_s
    said = False
    while True:
        try:
            model = await stub.GetModel(request, timeout=10)
            if model.live_version:
                return str(model.live.manifest_atom_id)
        except grpc.aio.AioRpcError as exc:
            if exc.code() not in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNAVAILABLE):
                raise
        if time.monotonic() > deadline:
            raise ModelUnavailable(
                f"ingest did not report a live {name} for tenant {SYSTEM_TENANT}"
                f" within {wait_s:g} s"
            )
        if not said:
            logger.info(
                "waiting for ingest to store a bundled model as atoms", extra={"model": name}
            )
            said = True
        await asyncio.sleep(POLL_S)


async def load_from_atoms(blobs: BlobStore, manifest_atom_id: str) -> MiniLM:
    manifest = json.loads(await _checked(blobs, manifest_atom_id))
    if manifest.get("format") != "safetensors":
        raise ModelUnavailable(f"MiniLM's manifest {manifest_atom_id} is not a safetensors model")
    missing = set(MINILM_COMPANIONS) - set(manifest["files"])
    if missing:
        raise ModelUnavailable(f"MiniLM's manifest {manifest_atom_id} lacks {sorted(missing)}")
    files = {path: await _checked(blobs, manifest["files"][path]) for path in MINILM_COMPANIONS}
    tensors = {t["name"]: _array(t, await _checked(blobs, t["atom"])) for t in manifest["tensors"]}
    return await asyncio.to_thread(build_minilm, files, tensors, manifest_atom_id)


async def load_llama_from_atoms(blobs: BlobStore, manifest_atom_id: str) -> tuple[LlamaModel, str]:
    """The model, and its header atom (which holds its tokenizer and chat template)."""
    manifest = json.loads(await _checked(blobs, manifest_atom_id))
    if manifest.get("format") != "gguf":
        raise ModelUnavailable(f"manifest {manifest_atom_id} is not a GGUF model")
    [header_part] = [p for p in manifest["parts"] if p["kind"] == "header"]
    header = await _checked(blobs, header_part["atom"])
    metadata = gguf.read_header(io.BytesIO(header).read, len(header)).metadata
    tensors = {}
    for t in manifest["tensors"]:
        atom = parse_tensor_atom(await _checked(blobs, t["atom"]))
        tensors[t["name"]] = (atom.encoding, atom.shape, atom.data)
    model = await asyncio.to_thread(build_llama, metadata, tensors, manifest_atom_id)
    return model, header_part["atom"]


def _array(entry: dict[str, Any], atom: bytes) -> np.ndarray:
    tensor = parse_tensor_atom(atom)
    if tensor.encoding not in DTYPES:
        raise ModelUnavailable(f"tensor {entry['name']!r} has an encoding {tensor.encoding}")
    return np.frombuffer(tensor.data, dtype=DTYPES[tensor.encoding]).reshape(tensor.shape)


async def _checked(blobs: BlobStore, atom_id: str) -> bytes:
    data = await blobs.get(atom_id)
    if hashlib.sha256(data).hexdigest() != atom_id:
        raise ModelUnavailable(f"atom {atom_id} does not hold what its address says")
    return data

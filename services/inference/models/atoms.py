"""MiniLM loaded from its tensor atoms: the live version of the system tenant's MiniLM is asked
of ingest (GetModel), its manifest and every atom it lists are read from the blob store, each
checked against its address, and the tensors are decoded from their canonical encoding
(hartonomous/tensor_atoms.py). The model's version is the manifest's address."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from typing import Any

import grpc
import numpy as np

from hartonomous.blobs import BlobStore
from hartonomous.modelfiles import MINILM_COMPANIONS, MINILM_NAME, SYSTEM_TENANT
from hartonomous.tensor_atoms import parse_tensor_atom
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc
from services.inference.models.minilm import MiniLM, build_minilm

logger = logging.getLogger(__name__)

# safetensors dtype -> numpy (the ones a BERT checkpoint holds).
DTYPES = {"F32": "<f4", "F16": "<f2", "F64": "<f8", "I64": "<i8"}
POLL_S = 0.5


class ModelUnavailable(RuntimeError):
    """The model was not ingested within the wait, or its atoms do not hold what they claim."""


async def live_minilm(channel: grpc.aio.Channel, wait_s: float) -> str:
    """The manifest address of the live system MiniLM, waiting up to `wait_s` for ingest to
    store and promote it (it does on its first start)."""
    stub: Any = ingest_pb2_grpc.IngestStub(channel)  # type: ignore[no-untyped-call]
    request = ingest_pb2.GetModelRequest(tenant_id=SYSTEM_TENANT, name=MINILM_NAME)
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
                f"ingest did not report a live {MINILM_NAME} for tenant {SYSTEM_TENANT}"
                f" within {wait_s:g} s"
            )
        if not said:
            logger.info("waiting for ingest to store the bundled MiniLM as atoms")
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

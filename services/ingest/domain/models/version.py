"""A model version's header and the events its ingest appends: an AtomIngested for each part
atom no one held (AtomReferenced for the rest), then the ModelDecomposed that names the
version, its manifest and its tensors."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from hartonomous.events.payloads import AtomIngested, AtomReferenced, ModelDecomposed, TensorAtom
from hartonomous.tenants import parse_tenant_id
from services.ingest.domain.errors import InvalidArgument
from services.ingest.domain.header import parse_atom_id
from services.ingest.domain.models.layout import FileLayout
from services.ingest.domain.models.manifest import StoredPart, architecture, plain

_NAME = re.compile(r"[A-Za-z0-9._-]{1,128}")
_VERSION = re.compile(r"[A-Za-z0-9._-]{1,64}")
_FILE_PART = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_FILES = 64
TENSOR_MIME = "application/vnd.hartonomous.tensor"
MANIFEST_MIME = "application/vnd.hartonomous.model-manifest+json"
PART_MIME = "application/octet-stream"


@dataclass(frozen=True)
class ModelHeader:
    tenant_id: str
    name: str
    version: str
    source_uri: str | None
    traceparent: str | None
    request_id: str | None
    api_key_id: str | None
    # Companion files (config, tokenizer): a path relative to the model's folder -> atom id.
    files: Mapping[str, str] = field(default_factory=dict)


def parse_model_header(
    *,
    tenant_id: str,
    name: str,
    version: str,
    source_uri: str = "",
    traceparent: str = "",
    request_id: str = "",
    api_key_id: str = "",
    files: Mapping[str, str] | None = None,
) -> ModelHeader:
    if not _NAME.fullmatch(name):
        raise InvalidArgument(f"name {name!r} is not 1 to 128 letters, digits, '.', '_' or '-'")
    if not _VERSION.fullmatch(version):
        raise InvalidArgument(
            f"version {version!r} is not 1 to 64 letters, digits, '.', '_' or '-'"
        )
    return ModelHeader(
        tenant_id=parse_tenant_id(tenant_id),
        name=name,
        version=version,
        source_uri=source_uri.strip() or None,
        traceparent=traceparent.strip() or None,
        request_id=request_id.strip() or None,
        api_key_id=api_key_id.strip() or None,
        files=parse_files(files or {}),
    )


def parse_files(files: Mapping[str, str]) -> dict[str, str]:
    """Companion paths must stay inside the model's folder: parts of letters, digits, '.',
    '_' and '-', joined by '/', none of them '.' or '..'."""
    if len(files) > MAX_FILES:
        raise InvalidArgument(f"at most {MAX_FILES} companion files, not {len(files)}")
    parsed = {}
    for path, atom_id in sorted(files.items()):
        parts = path.split("/")
        if any(p in (".", "..") or not _FILE_PART.fullmatch(p) for p in parts):
            raise InvalidArgument(
                f"companion file {path!r} is not a relative path of letters, digits, '.', '_'"
                " and '-' parts"
            )
        parsed[str(PurePosixPath(path))] = parse_atom_id(atom_id, f"the atom of {path!r}")
    return parsed


@dataclass(frozen=True)
class StoredAtom:
    atom_id: str
    size_bytes: int  # as the blob store holds it
    kind: str  # header, tensor, gap or manifest


def atom_payloads(
    header: ModelHeader, atoms: Sequence[StoredAtom], known: set[str]
) -> list[AtomIngested | AtomReferenced]:
    """One event per distinct atom: ingested when no one held it, else a reference."""
    found: list[AtomIngested | AtomReferenced] = []
    seen: set[str] = set()
    for atom in atoms:
        if atom.atom_id in seen:
            continue
        seen.add(atom.atom_id)
        if atom.atom_id in known:
            found.append(
                AtomReferenced(
                    atom_id=atom.atom_id, tenant_id=header.tenant_id, source_uri=header.source_uri
                )
            )
            continue
        mime = {"tensor": TENSOR_MIME, "manifest": MANIFEST_MIME}.get(atom.kind, PART_MIME)
        found.append(
            AtomIngested(
                atom_id=atom.atom_id,
                tenant_id=header.tenant_id,
                modality="tensor" if atom.kind == "tensor" else "model",
                mime_type=mime,
                size_bytes=atom.size_bytes,
                blob_key=atom.atom_id,
                source_uri=header.source_uri,
            )
        )
    return found


def decomposed_payload(
    header: ModelHeader,
    layout: FileLayout,
    parts: Sequence[StoredPart],
    manifest_atom_id: str,
    source_sha256: str,
    known: set[str],
) -> ModelDecomposed:
    atoms = {p.part.tensor.name: p.atom_id for p in parts if p.part.tensor is not None}
    first: set[str] = set()
    tensors = []
    for t in layout.tensors:
        atom_id = atoms[t.name]
        stored_here = atom_id not in known and atom_id not in first
        first.add(atom_id)
        tensors.append(
            TensorAtom(
                name=t.name,
                atom_id=atom_id,
                dtype=t.encoding,
                shape=list(t.shape),
                size_bytes=t.nbytes,
                first_stored=stored_here,
            )
        )
    return ModelDecomposed(
        model_atom_id=manifest_atom_id,
        tenant_id=header.tenant_id,
        format=layout.format,
        tensors=tensors,
        metadata_json=json.dumps(plain(layout.metadata), sort_keys=True),
        name=header.name,
        version=header.version,
        source_sha256=source_sha256,
        size_bytes=layout.size,
        architecture=architecture(layout),
        files=dict(header.files),
    )

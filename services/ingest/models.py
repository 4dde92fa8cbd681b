"""IngestModel: a model file as a version of a named model, in the order that makes a crash
harmless (as for IngestAtom, handlers.py):

1. the upload is spooled to a temporary file, hashed and counted on the way (bounded memory at
   any size), and refused past the size limit or when the tenant has that version already;
2. the file's layout is read from the spool, every length checked against the file;
3. every part (header, tensors, gaps) is hashed into its atom address, and the parts no one
   holds yet are stored as atoms (a held tensor is only referenced: no second write), then the
   manifest: durable before anything refers to them, so a crash or a refusal leaves at worst
   orphan blobs, which the blob GC removes;
4. one atomic publish: an AtomIngested for each atom no one held, an AtomReferenced for the
   rest, the ModelDecomposed that names the version, and the UsageRecorded that meters the
   file's bytes (storage is metered per tenant and atom, so a shared tensor counts once);
5. the request applies its own events to the catalog (read-your-writes)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from hartonomous.events import new_event_id
from services.ingest import handlers
from services.ingest.domain import errors, payloads
from services.ingest.domain.models import gguf, safetensors
from services.ingest.domain.models.layout import FileLayout, Part, atom_prefix
from services.ingest.domain.models.manifest import StoredPart, address, manifest
from services.ingest.domain.models.version import (
    ModelHeader,
    StoredAtom,
    atom_payloads,
    decomposed_payload,
)
from services.ingest.domain.results import ModelVersionView

PIECE = 1 << 20
READABLE_POLLS = 60


@dataclass(frozen=True)
class Spooled:
    path: Path
    size: int
    sha256: str


async def ingest_model(
    deps: handlers.Deps, header: ModelHeader, data: AsyncIterator[bytes]
) -> ModelVersionView:
    """Raises errors.IngestError for what the caller has to fix; nothing is appended then."""
    sealed_source = await handlers.seal(deps, header.tenant_id, header.source_uri)
    for path, atom_id in header.files.items():
        if not await deps.catalog.holds(header.tenant_id, atom_id):
            raise errors.InvalidArgument(
                f"companion file {path!r}: tenant {header.tenant_id} holds no atom {atom_id}"
            )
    with _spool_dir() as scratch:
        # The whole upload is read before any refusal: a gRPC client still sending when the
        # call ends sees a transport error, not the reason.
        spooled = await _spool(data, scratch / "upload", deps.max_model_bytes)
        if await deps.catalog.model_version(header.tenant_id, header.name, header.version):
            raise errors.AlreadyExists(
                f"tenant {header.tenant_id} already has {header.name} version {header.version}"
            )
        layout = await asyncio.to_thread(_layout, spooled.path, spooled.size)
        addressed = await asyncio.to_thread(_addresses, spooled.path, layout.parts())
        held = await deps.catalog.known([p.atom_id for p in addressed])
        parts = [await _store(deps, spooled.path, p, held) for p in addressed]
    document = manifest(layout, parts, spooled.sha256, header.files)
    manifest_id = (await deps.blobs.put(handlers.single(document))).sha256
    assert manifest_id == address(document)
    stored = [
        StoredAtom(p.atom_id, p.part.length + len(atom_prefix(p.part)), p.part.kind) for p in parts
    ]
    stored.append(StoredAtom(manifest_id, len(document), "manifest"))
    known = await deps.catalog.known([a.atom_id for a in stored])
    request_id = header.request_id or new_event_id()
    atoms = [
        handlers.new_event(deps, p, header, request_id)
        for p in atom_payloads(dataclasses.replace(header, source_uri=sealed_source), stored, known)
    ]
    decomposed = decomposed_payload(header, layout, parts, manifest_id, spooled.sha256, known)
    new_bytes = sum(t.size_bytes for t in decomposed.tensors if t.first_stored)
    usage = payloads.usage_payload(
        header, manifest_id, spooled.size, new_bytes == 0, datetime.now(UTC)
    )
    events = [*atoms, deps.publisher.caused(atoms[-1], decomposed)]
    await deps.publisher.publish(*events, deps.publisher.caused(events[-1], usage))
    await handlers.read_your_writes(deps.catalog, events)
    for _ in range(READABLE_POLLS):  # when the update failed, the consumer applies it
        view = await deps.catalog.model_version(header.tenant_id, header.name, header.version)
        if view is not None:
            return view
        await asyncio.sleep(0.5)
    raise errors.IngestError("the version was stored but is not readable yet; retry the read")


@contextmanager
def _spool_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="hartonomous-model-") as scratch:
        yield Path(scratch)


async def _spool(data: AsyncIterator[bytes], path: Path, limit: int) -> Spooled:
    digest, size = hashlib.sha256(), 0
    with path.open("wb") as out:
        async for piece in data:
            size += len(piece)
            if size > limit:
                raise errors.ContentTooLarge(f"the model file is over {limit} bytes")
            digest.update(piece)
            await asyncio.to_thread(out.write, piece)
    if size == 0:
        raise errors.InvalidArgument("the model file is empty")
    return Spooled(path, size, digest.hexdigest())


def _layout(path: Path, size: int) -> FileLayout:
    with path.open("rb") as f:
        first = f.read(8)
        if first[:4] == gguf.MAGIC:
            f.seek(0)
            layout = gguf.read_layout(f.read, size)
        else:
            length = safetensors.header_length(first, size)
            layout = safetensors.read_layout(first + f.read(length), size)
    layout.parts()  # the header must be consistent with the file before anything is stored
    return layout


def _addresses(path: Path, parts: list[Part]) -> list[StoredPart]:
    """Every part's atom address, hashed from the spool (one sequential read), so atoms the
    catalog holds already are referenced without being written again."""
    found = []
    with path.open("rb") as f:
        for part in parts:
            digest = hashlib.sha256(atom_prefix(part))
            f.seek(part.offset)
            left = part.length
            while left:
                piece = _read(f, min(PIECE, left))
                left -= len(piece)
                digest.update(piece)
            found.append(StoredPart(part, digest.hexdigest()))
    return found


async def _store(deps: handlers.Deps, path: Path, part: StoredPart, held: set[str]) -> StoredPart:
    """A held atom is catalogued, so the blob GC keeps it: no second write. A new one is
    written and checked against the address just computed (the spool did not change)."""
    if part.atom_id not in held:
        await deps.blobs.put(_part_bytes(path, part.part), expected_sha256=part.atom_id)
    return part


async def _part_bytes(path: Path, part: Part) -> AsyncIterator[bytes]:
    prefix = atom_prefix(part)
    if prefix:
        yield prefix
    with path.open("rb") as f:
        f.seek(part.offset)
        left = part.length
        while left:
            piece = await asyncio.to_thread(_read, f, min(PIECE, left))
            left -= len(piece)
            yield piece


def _read(f: BinaryIO, n: int) -> bytes:
    piece = f.read(n)
    if len(piece) != n:
        raise errors.InvalidArgument("the model file changed while it was read")
    return piece

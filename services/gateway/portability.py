"""A tenant's data out of the platform and into another: `GET /v1/export` and `hartonomous
export` stream one archive (archive.py) of everything the tenant holds; `hartonomous import`
checks a whole archive first and only then ingests its documents for a tenant of any platform.

Both go through the services' gRPC APIs (ingest's catalog and bytes, billing's usage and
invoices), so they work the same against `hartonomous up` and a distributed platform, and an
import is ordinary ingests: deduplicated, chunked, embedded, metered and in the log like any
other. Usage and invoices travel as records of the old platform: an import does not replay
them into the new one's ledger (its billing is its own).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from google.protobuf.json_format import MessageToDict

from hartonomous.v1 import billing_pb2, ingest_pb2
from services.gateway.archive import READ_PIECE, ArchiveError, ArchiveWriter, members, verify
from services.gateway.clients import (
    GET_USAGE,
    INGEST_ATOM,
    LIST_ATOMS,
    LIST_INVOICES,
    READ_ATOM,
    Peers,
)
from services.gateway.uploads import SECOND_ATOM_HEADER, atom_messages, single

PAGE = 200
IMPORTERS = 4
IN_MEMORY = 4 << 20
PROGRESS_EVERY_S = 2.0

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Imported:
    documents: int
    deduplicated: int
    bytes: int


def _quiet(_: str) -> None:
    pass


async def export_tenant(
    peers: Peers, tenant_id: str, progress: Progress = _quiet
) -> AsyncIterator[bytes]:
    """The tenant's archive as it is written; `progress` hears about it every few seconds."""
    archive = ArchiveWriter()
    documents, said = 0, time.monotonic()
    after = ""
    while True:
        request = ingest_pb2.ListAtomsRequest(tenant_id=tenant_id, after_atom_id=after, limit=PAGE)
        page: ingest_pb2.AtomPage = await peers.unary(LIST_ATOMS, request)
        for atom in page.atoms:
            entry = json.dumps(_entry(atom), indent=1, sort_keys=True).encode()
            async for part in archive.data(f"atoms/{atom.atom_id}.json", entry):
                yield part
            async for part in archive.member(
                f"atoms/{atom.atom_id}", atom.size_bytes, _content(peers, tenant_id, atom.atom_id)
            ):
                yield part
            documents += 1
            if time.monotonic() - said >= PROGRESS_EVERY_S:
                said = time.monotonic()
                progress(f"{documents} documents, {archive.bytes_written / 2**20:.1f} MiB")
        if not page.next_after:
            break
        after = page.next_after
    usage = await peers.unary(
        GET_USAGE,
        billing_pb2.UsageRequest(tenant_id=tenant_id, group_by=billing_pb2.USAGE_GROUPING_DAY),
    )
    async for part in archive.data("usage.json", _json(usage)):
        yield part
    invoices = await peers.unary(
        LIST_INVOICES, billing_pb2.ListInvoicesRequest(tenant_id=tenant_id)
    )
    async for part in archive.data("invoices.json", _json(invoices)):
        yield part
    exported_at = datetime.now(UTC).isoformat()
    yield archive.finish(
        {"tenant_id": tenant_id, "exported_at": exported_at, "documents": documents}
    )
    progress(f"{documents} documents, {archive.bytes_written / 2**20:.1f} MiB: done")


async def import_archive(
    peers: Peers, path: Path, tenant_id: str, progress: Progress = _quiet
) -> Imported:
    """Every document of the archive at `path`, ingested for `tenant_id`. Raises ArchiveError,
    before anything is ingested, unless the whole archive matches its manifest.

    Documents of up to IN_MEMORY bytes are read whole and IMPORTERS of them ingested at once;
    a larger one streams from the archive alone, once those in flight are done."""
    manifest = await asyncio.to_thread(verify, path)
    total = manifest["documents"]
    progress(f"{path}: verified, {total} documents of tenant {manifest['tenant_id']}")
    counts = Imported(0, 0, 0)
    said = time.monotonic()
    slots = asyncio.Semaphore(IMPORTERS)
    flying: set[asyncio.Task[None]] = set()

    async def ingest(
        header: ingest_pb2.IngestHeader, data: AsyncIterator[bytes], size: int
    ) -> None:
        nonlocal counts, said
        try:
            reply = await peers.upload(INGEST_ATOM, atom_messages(header, data), SECOND_ATOM_HEADER)
        finally:
            slots.release()
        counts = Imported(
            counts.documents + 1, counts.deduplicated + reply.deduplicated, counts.bytes + size
        )
        if time.monotonic() - said >= PROGRESS_EVERY_S:
            said = time.monotonic()
            progress(f"{counts.documents}/{total} documents imported")

    failed: list[BaseException] = []

    def finished(task: asyncio.Task[None]) -> None:
        flying.discard(task)
        if not task.cancelled() and task.exception() is not None:
            failed.append(task.exception())  # type: ignore[arg-type]

    async def drain() -> None:
        await asyncio.gather(*flying, return_exceptions=True)
        if failed:
            raise failed[0]

    reader = members(path)
    entry: dict[str, Any] | None = None
    try:
        while (member := await asyncio.to_thread(next, reader, None)) is not None:
            name, handle, size = member
            if name.startswith("atoms/") and name.endswith(".json"):
                entry = json.loads(await asyncio.to_thread(handle.read))
                continue
            if not name.startswith("atoms/"):
                continue
            if entry is None or name != f"atoms/{entry['atom_id']}":
                raise ArchiveError(f"{path}: {name} comes without its entry")
            header, entry = _header(tenant_id, entry), None
            await slots.acquire()
            if failed:
                raise failed[0]
            if size <= IN_MEMORY:
                data = await asyncio.to_thread(handle.read)
                task = asyncio.create_task(ingest(header, single(data), size))
                flying.add(task)
                task.add_done_callback(finished)
            else:
                await drain()
                await ingest(header, _read(handle), size)
        await drain()
    finally:
        for task in flying:
            task.cancel()
    progress(f"{counts.documents}/{total} documents imported: done")
    return counts


def _entry(atom: ingest_pb2.Atom) -> dict[str, Any]:
    """What GET /v1/atoms/{id} shows of it."""
    return {
        "atom_id": atom.atom_id,
        "modality": atom.modality,
        "mime_type": atom.mime_type,
        "size_bytes": atom.size_bytes,
        "metadata": json.loads(atom.metadata_json or "{}"),
        "source_uri": atom.source_uri or None,
        "created_at": atom.created_at.ToDatetime(UTC).isoformat(),
        "chunker": atom.chunker or None,
        "chunks": [MessageToDict(c, preserving_proto_field_name=True) for c in atom.chunks],
    }


def _header(tenant_id: str, entry: dict[str, Any]) -> ingest_pb2.IngestHeader:
    return ingest_pb2.IngestHeader(
        tenant_id=tenant_id,
        mime_type=entry["mime_type"],
        modality=entry["modality"],
        metadata_json=json.dumps(entry["metadata"]),
        source_uri=entry["source_uri"] or "",
        expected_sha256=entry["atom_id"],
    )


async def _content(peers: Peers, tenant_id: str, atom_id: str) -> AsyncIterator[bytes]:
    request = ingest_pb2.ReadAtomRequest(tenant_id=tenant_id, atom_id=atom_id)
    async for message in peers.stream(READ_ATOM, request):
        yield message.data


async def _read(handle: IO[bytes]) -> AsyncIterator[bytes]:
    while piece := await asyncio.to_thread(handle.read, READ_PIECE):
        yield piece


def _json(message: Any) -> bytes:
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=1).encode()

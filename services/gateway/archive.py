"""The export archive's format: a POSIX tar written as a stream (bounded memory, no temporary
file), read back only after every member has been checked against its manifest.

Layout, under `hartonomous-export/`:
  atoms/<id>.json   a document's catalog entry, as `GET /v1/atoms/{id}` shows it
  atoms/<id>        its bytes (the entry comes first, so an importer has it before the bytes)
  usage.json        usage by day and operation
  invoices.json     issued invoices
  manifest.json     last: the format, tenant, time, counts, and every other member's size and
                    SHA-256

A truncated download loses the manifest (or breaks a member): `verify` refuses it, as it
refuses a member whose bytes or size differ from the manifest, a missing or an extra member.
Document bytes are content-addressed besides: importing them checks each against its id.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

from services.gateway.uploads import single

FORMAT = "hartonomous-export/1"
ROOT = "hartonomous-export"
MANIFEST = "manifest.json"
BLOCK = 512
READ_PIECE = 1 << 20


class ArchiveError(ValueError):
    """An archive that is not a complete, untampered export."""


class ArchiveWriter:
    """Members as tar bytes, in the order given; `finish` writes the manifest and the end."""

    def __init__(self) -> None:
        self._files: dict[str, dict[str, Any]] = {}
        self._mtime = int(time.time())

    @property
    def bytes_written(self) -> int:
        return sum(f["size"] for f in self._files.values())

    async def member(
        self, name: str, size: int, chunks: AsyncIterable[bytes]
    ) -> AsyncIterator[bytes]:
        """`size` bytes from `chunks` as member `name` (a different length is an error: the
        header has gone out already)."""
        yield self._header(name, size)
        digest, written = hashlib.sha256(), 0
        async for chunk in chunks:
            digest.update(chunk)
            written += len(chunk)
            yield chunk
        if written != size:
            raise ArchiveError(f"{name}: {written} bytes where {size} were announced")
        yield _padding(size)
        self._files[name] = {"size": size, "sha256": digest.hexdigest()}

    def data(self, name: str, data: bytes) -> AsyncIterator[bytes]:
        return self.member(name, len(data), single(data))

    def finish(self, header: dict[str, Any]) -> bytes:
        """The manifest (`header` plus the format and every member's size and hash) and the
        end-of-archive blocks."""
        manifest = {**header, "format": FORMAT, "files": self._files}
        data = json.dumps(manifest, indent=1, sort_keys=True).encode()
        return self._header(MANIFEST, len(data)) + data + _padding(len(data)) + bytes(2 * BLOCK)

    def _header(self, name: str, size: int) -> bytes:
        info = tarfile.TarInfo(f"{ROOT}/{name}")
        info.size, info.mtime, info.mode = size, self._mtime, 0o644
        return info.tobuf(format=tarfile.PAX_FORMAT)


def verify(path: Path) -> dict[str, Any]:
    """Read the whole archive and return its manifest once every member matches it."""
    seen: dict[str, dict[str, Any]] = {}
    manifest: dict[str, Any] | None = None
    try:
        for name, handle, size in members(path):
            if name == MANIFEST:
                manifest = json.loads(handle.read())
                continue
            digest = hashlib.sha256()
            while piece := handle.read(READ_PIECE):
                digest.update(piece)
            seen[name] = {"size": size, "sha256": digest.hexdigest()}
    except (tarfile.TarError, EOFError) as exc:  # a member cut short
        raise ArchiveError(f"{path}: not a complete tar archive ({exc})") from None
    except json.JSONDecodeError as exc:
        raise ArchiveError(f"{path}: its manifest is not JSON ({exc})") from None
    if manifest is None:
        raise ArchiveError(f"{path}: no {MANIFEST} (the archive is truncated or not an export)")
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"{path}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    listed: dict[str, dict[str, Any]] = manifest.get("files", {})
    problems = [f"missing {n}" for n in sorted(listed.keys() - seen.keys())]
    problems += [f"not in the manifest: {n}" for n in sorted(seen.keys() - listed.keys())]
    problems += [
        f"{n} differs from the manifest (size or SHA-256)"
        for n in sorted(listed.keys() & seen.keys())
        if listed[n] != seen[n]
    ]
    if problems:
        shown = "; ".join(problems[:5]) + (
            f"; and {len(problems) - 5} more" if problems[5:] else ""
        )
        raise ArchiveError(f"{path}: {shown}")
    return manifest


def members(path: Path) -> Iterator[tuple[str, IO[bytes], int]]:
    """(name under the root, a reader, size) of each member in order."""
    try:
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                if not member.isfile() or not member.name.startswith(f"{ROOT}/"):
                    raise ArchiveError(f"{path}: unexpected member {member.name!r}")
                handle = tar.extractfile(member)
                assert handle is not None  # a regular file
                yield member.name.removeprefix(f"{ROOT}/"), handle, member.size
    except (tarfile.TarError, EOFError) as exc:
        raise ArchiveError(f"{path}: not a complete tar archive ({exc})") from None


def _padding(size: int) -> bytes:
    return bytes(-size % BLOCK)

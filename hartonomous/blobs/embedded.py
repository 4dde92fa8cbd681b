"""The embedded blob adapter: a content-addressed directory (`blobs/sha256/ab/cd/<hash>` under the
data dir). Writes are atomic (temp file, fsync, rename) and the hash is verified before the
rename, so a reader never sees a partial or mislabelled blob; a crash leaves at worst an orphan
temp file under `incoming/`."""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime
from pathlib import Path

from hartonomous.blobs.port import (
    READ_CHUNK,
    BlobHashMismatchError,
    BlobNotFoundError,
    BlobRef,
    BlobStore,
    check_hex,
)


def _place(tmp: Path, final: Path) -> None:
    """Rename into place (same bytes, same name: idempotent) and fsync the directories, so the
    blob survives a power loss before any event that names it is appended."""
    created = [d for d in (final.parent.parent, final.parent) if not d.exists()]
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    for directory in [final.parent, *[d.parent for d in created]]:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _unlink_if_older(path: Path, cutoff: datetime) -> bool:
    try:
        if path.stat().st_mtime >= cutoff.timestamp():
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    return True


class DirectoryBlobStore(BlobStore):
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        check_hex(sha256)
        return self.root / "sha256" / sha256[:2] / sha256[2:4] / sha256

    async def put(
        self, chunks: AsyncIterable[bytes], expected_sha256: str | None = None
    ) -> BlobRef:
        incoming = self.root / "incoming"
        await asyncio.to_thread(incoming.mkdir, parents=True, exist_ok=True)
        digest = hashlib.sha256()
        size = 0
        fd, tmp_name = tempfile.mkstemp(dir=incoming, prefix="blob-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    await asyncio.to_thread(out.write, chunk)
                await asyncio.to_thread(out.flush)
                await asyncio.to_thread(os.fsync, out.fileno())
            sha = digest.hexdigest()
            if expected_sha256 is not None and sha != expected_sha256:
                raise BlobHashMismatchError(f"content hashes to {sha}, expected {expected_sha256}")
            final = self.path(sha)
            await asyncio.to_thread(_place, tmp, final)
            return BlobRef(sha, size)
        finally:
            await asyncio.to_thread(tmp.unlink, missing_ok=True)

    async def exists(self, sha256: str) -> bool:
        return await asyncio.to_thread(self.path(sha256).is_file)

    async def delete(self, sha256: str, *, written_before: datetime) -> bool:
        return await asyncio.to_thread(_unlink_if_older, self.path(sha256), written_before)

    async def read(self, sha256: str) -> AsyncIterator[bytes]:
        path = self.path(sha256)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise BlobNotFoundError(f"no blob {sha256}") from None
        with handle:
            while chunk := await asyncio.to_thread(handle.read, READ_CHUNK):
                yield chunk

"""Orphan blobs: bytes written but never named by an event (a crash between the blob write and
the append, or a request that failed after storing its chunks). The catalog decides what is
live; any other file under the blob directory older than a grace period is removed, and so
are temp files a crash left in `incoming/`.

The grace period must exceed the longest ingest (blob written to event applied) and the
catalog consumer's worst lag, or a blob could go before its event reaches the catalog. An
ingest of the same bytes rewrites the blob (a fresh mtime) and each file's age is checked again
just before it is removed, which narrows the race with a concurrent ingest to that instant.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from hartonomous.blobs.embedded import DirectoryBlobStore
from services.ingest.store import Catalog

BATCH = 500
"""Blob names checked against the catalog per query."""


@dataclass(frozen=True)
class GcReport:
    blobs_removed: int
    temp_files_removed: int


async def garbage_collect_orphans(
    catalog: Catalog, blobs: DirectoryBlobStore, older_than: timedelta
) -> GcReport:
    cutoff = time.time() - older_than.total_seconds()
    removed = 0
    # One two-hex-digit fan-out folder at a time keeps memory bounded on a large store.
    for folder in await asyncio.to_thread(_folders, blobs.root / "sha256"):
        old = await asyncio.to_thread(_old_files, folder, cutoff)
        for start in range(0, len(old), BATCH):
            batch = old[start : start + BATCH]
            live = await catalog.known([path.name for path in batch])
            orphans = [path for path in batch if path.name not in live]
            removed += await asyncio.to_thread(_remove_if_older, orphans, cutoff)
    incoming = await asyncio.to_thread(_old_files, blobs.root / "incoming", cutoff, depth=0)
    temp_removed = await asyncio.to_thread(_remove_if_older, incoming, cutoff)
    return GcReport(removed, temp_removed)


def _folders(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []


def _old_files(folder: Path, cutoff: float, depth: int = 1) -> list[Path]:
    """Files `depth` folders below `folder` last modified before `cutoff`."""
    pattern = "/".join(["*"] * (depth + 1))
    old = []
    for path in folder.glob(pattern):
        try:
            if path.is_file() and path.stat().st_mtime < cutoff:
                old.append(path)
        except FileNotFoundError:  # removed meanwhile
            continue
    return old


def _remove_if_older(paths: list[Path], cutoff: float) -> int:
    removed = 0
    for path in paths:
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed

"""A crash between the blob write and the append leaves only orphan blobs, and the catalog-driven
sweep removes orphans past their grace period while every catalogued blob stays."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from datetime import timedelta

import grpc
import pytest

from hartonomous.eventlog.port import Position, Record
from services.ingest.gc import GcReport, garbage_collect_orphans
from tests.integration.ingest.conftest import Platform, prose, requests, stream


async def test_orphans_past_the_grace_period_go_and_catalogued_blobs_stay(
    platform: Platform,
) -> None:
    kept = await platform.ingest(prose(800).encode())
    orphan = await platform.blobs.put(stream(b"written, then the process died"))
    young = await platform.blobs.put(stream(b"an ingest still in flight"))
    crashed_write = platform.blobs.root / "incoming" / "blob-crashed"
    crashed_write.write_bytes(b"half a blo")
    an_hour_ago = time.time() - 3600
    for path in platform.blob_files():
        if path.name != young.sha256:
            os.utime(path, (an_hour_ago, an_hour_ago))

    report = await garbage_collect_orphans(
        platform.deps.catalog, platform.blobs, timedelta(minutes=30)
    )

    assert report == GcReport(blobs_removed=1, temp_files_removed=1)
    left = {path.name for path in platform.blob_files()}
    assert left == {kept.atom_id, *kept.chunk_atom_ids, young.sha256}
    assert orphan.sha256 not in left
    for atom_id in (kept.atom_id, *kept.chunk_atom_ids):
        assert await platform.read("acme", atom_id)


async def test_a_failed_append_leaves_no_event_and_only_collectable_blobs(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def log_down(records: Sequence[Record], within: float | None = None) -> list[Position]:
        raise ConnectionError("the log went away")

    monkeypatch.setattr(platform.event_log, "append_atomic", log_down)
    with pytest.raises(grpc.aio.AioRpcError) as got:
        await platform.stub.IngestAtom(requests(prose(800).encode()))
    # The log down is an outage the client may retry, not a broken service.
    assert got.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "log or database is unreachable" in (got.value.details() or "")
    monkeypatch.undo()

    assert await platform.events("atoms") == [] and await platform.events("usage") == []
    assert platform.blob_files()  # the text and its chunks, durable but never referenced
    report = await garbage_collect_orphans(platform.deps.catalog, platform.blobs, timedelta(0))
    assert report.blobs_removed > 1
    assert platform.blob_files() == []

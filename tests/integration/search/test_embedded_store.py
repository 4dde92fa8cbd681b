"""The embedded store's own guarantees, beyond the port's contract: a keyword index that lags
the table is rebuilt from it, and queries run while points are being written."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from services.search import domain
from services.search.domain import Filter, Point
from services.search.vectors.embedded.engine import SCAN_PAGE, EmbeddedStore
from services.search.vectors.embedded.keywords import KeywordIndex
from services.search.vectors.embedded.shard import Shard, View
from tests.support.search_projection import snapshot
from tests.support.search_writer import TENANTS, batch


async def test_a_keyword_index_that_missed_a_commit_is_rebuilt_from_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = EmbeddedStore(tmp_path)
    await store.ensure()
    await store.upsert(batch(0))

    def disk_full(*_: object) -> None:
        raise OSError(28, "No space left on device")

    # The table commits the tenant's batch, then the keyword index cannot: the write fails.
    acme = [p for p in batch(1) if p.payload["tenant_id"] == TENANTS[0]]
    with monkeypatch.context() as patch:
        patch.setattr(KeywordIndex, "write", disk_full)
        with pytest.raises(OSError, match="No space"):
            await store.upsert(acme)
    await store.close()

    reopened = EmbeddedStore(tmp_path)  # the next process finds the index marked as lagging
    await reopened.ensure()
    try:
        for point in batch(0) + acme:
            where = Filter(point.payload["tenant_id"])
            hits = await reopened.sparse(domain.query_terms(point.payload["atom_id"]), where, 3)
            assert [h.id for h in hits] == [point.id], (point.payload, hits)
    finally:
        await reopened.close()


async def test_queries_run_while_points_are_written_and_moved(tmp_path: Path) -> None:
    """Writers append batches and move existing points to new vectors; every query meanwhile
    answers from one tenant, without duplicates, best first."""
    store = EmbeddedStore(tmp_path)
    await store.ensure()
    await store.upsert(batch(0))
    stop = asyncio.Event()

    async def write() -> None:
        for number in range(1, 15):
            await store.upsert(batch(number))
            moved = [
                domain.Point(p.id, list(-np.asarray(p.dense)), p.sparse, p.payload)
                for p in batch(number - 1)
            ]
            await store.upsert(moved)
        stop.set()

    async def query(tenant: str) -> int:
        answered = 0
        rng = np.random.default_rng(len(tenant))
        while not stop.is_set():
            probe = rng.normal(size=domain.DIM).tolist()
            for hits in (
                await store.dense(probe, Filter(tenant), 10),
                await store.hybrid(
                    probe, domain.query_terms("shared words"), Filter(tenant), 10, 50
                ),
            ):
                assert len({h.id for h in hits}) == len(hits) == 10
                assert {h.payload["tenant_id"] for h in hits} == {tenant}
                assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
            answered += 1
        return answered

    try:
        answered = await asyncio.gather(write(), *(query(t) for t in TENANTS))
        assert all(answered[1:])
        assert await store.count() == 15 * len(batch(0))
    finally:
        await store.close()


def live_rows(view: View) -> list[int]:
    """The row of every slot a query holding `view` scores."""
    return sorted(int(row) for row in view.slot_row[np.flatnonzero(view.live())])


def test_a_query_that_began_before_a_move_still_sees_every_point_once(tmp_path: Path) -> None:
    """Moving points gives them new slots and kills the old ones in place: a view taken before
    the move must keep seeing the old slots (it cannot see the new ones), and the next view
    must see each point in exactly one slot. CI once caught a dense query with 9 of 10 hits
    when a move killed old slots under a view that did not hold the new ones."""
    points = [p for p in batch(0) if p.payload["tenant_id"] == TENANTS[0]]
    shard = Shard(tmp_path, TENANTS[0])
    try:
        shard.upsert(points)
        before = shard._view  # what a query that starts now reads to its end
        rows = live_rows(before)
        assert len(rows) == len(set(rows)) == len(points)
        shard.upsert([Point(p.id, list(-np.asarray(p.dense)), p.sparse, p.payload) for p in points])
        after = shard._view
        assert live_rows(before) == live_rows(after) == rows
        probe = np.asarray(points[0].dense)
        for view, sign in ((before, 1), (after, -1)):  # each view scores its own vectors
            live = np.flatnonzero(view.live())
            best = live[np.argmax(view.matrix[live] @ (sign * probe))]
            assert view.slot_row[best] == rows[0]
        [(row, score)] = shard.dense(-probe, [], 1)  # the first point, at its new vector
        assert row == rows[0] and score > 0.9999
    finally:
        shard.close()


async def test_a_scan_pages_through_every_point_once(tmp_path: Path) -> None:
    store = EmbeddedStore(tmp_path)
    await store.ensure()
    try:
        written = [p for number in range(30) for p in batch(number)]  # 1,500 per tenant
        await store.upsert(written)
        scanned = [p.id async for p in store.scan()]
        assert len(scanned) == len(set(scanned)) == len(written) > 2 * SCAN_PAGE
        assert set(scanned) == {p.id for p in written}
    finally:
        await store.close()


def vector_files(root: Path) -> list[Path]:
    return sorted(root.glob("*/vectors*.f32"))


async def test_dead_slots_are_compacted_away_and_nothing_else_changes(tmp_path: Path) -> None:
    """Moving every point twice leaves two dead slots per live one: the shard rewrites its
    vectors into a new file (one per shard left), and points, queries and scans are as before."""
    store = EmbeddedStore(tmp_path, compact_min_dead=500)
    await store.ensure()
    written = [p for number in range(30) for p in batch(number)]
    moved = written
    try:
        await store.upsert(written)
        before = sum(f.stat().st_size for f in vector_files(tmp_path))
        for _ in range(2):  # to the opposite vector and back: two moves
            moved = [Point(p.id, list(-np.asarray(p.dense)), p.sparse, p.payload) for p in moved]
            await store.upsert(moved)
        files = vector_files(tmp_path)
        assert len(files) == len(TENANTS) and all(f.name != "vectors.f32" for f in files)
        assert sum(f.stat().st_size for f in files) <= before
        expected = await snapshot(store)
        probe = moved[7]
        [top] = await store.dense(probe.dense, Filter(probe.payload["tenant_id"]), 1)
        assert top.id == probe.id and top.score > 0.9999
        await store.delete("doc3")
    finally:
        await store.close()
    reopened = EmbeddedStore(tmp_path)
    await reopened.ensure()
    try:
        count = len(await snapshot(reopened))
        assert count == len(expected) - len(batch(3))
        assert vector_files(tmp_path) == files
    finally:
        await reopened.close()


async def test_a_lower_threshold_compacts_a_shard_at_its_next_write(tmp_path: Path) -> None:
    """Retuned live: each open shard holds its dead slots until a write of its own compacts
    them."""
    store = EmbeddedStore(tmp_path)
    await store.ensure()
    try:
        await store.upsert(batch(0) + batch(1) + batch(2))
        await store.delete("doc0")
        await store.delete("doc1")  # per tenant: 2 dead slots per live one, under 10,000
        per_tenant = len(batch(0)) // len(TENANTS)
        assert store.dead_slots() == 2 * per_tenant * len(TENANTS)
        store.retune_compaction(1)
        assert store.dead_slots() == 2 * per_tenant * len(TENANTS)  # nothing written yet
        await store.delete("doc2", tenant_id=TENANTS[0])
        assert store.dead_slots() == 2 * per_tenant  # the other tenant's shard had no write
        await store.delete("doc2")
        assert store.dead_slots() == 0
        with pytest.raises(ValueError):
            store.retune_compaction(0)
    finally:
        await store.close()

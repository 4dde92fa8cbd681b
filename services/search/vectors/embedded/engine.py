"""The embedded VectorStore: a shard per tenant under `<data_dir>/search`, opened on first use.

Writes run on one thread (a shard's writes must not interleave); queries on a small pool, so
they run while writes do. The tenant of every query is a shard, not a condition: one tenant's
query never reads another's vectors, terms or BM25 statistics."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import threading
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from services.search.domain import (
    Filter,
    Hit,
    Point,
    SparseVector,
    filter_term,
    fuse_by_reciprocal_rank,
)
from services.search.vectors.embedded.shard import COMPACT_MIN_DEAD, Shard
from services.search.vectors.port import VectorStore

T = TypeVar("T")

QUERY_THREADS = 4
SCAN_PAGE = 1_000


def _directory_name(tenant_id: str) -> str:
    """Tenant ids are arbitrary strings; a shard's directory is named by their digest."""
    return hashlib.sha256(tenant_id.encode()).hexdigest()[:32]


class EmbeddedStore(VectorStore):
    def __init__(self, root: Path, compact_min_dead: int = COMPACT_MIN_DEAD) -> None:
        self._root = root
        self._compact_min_dead = compact_min_dead
        self._shards: dict[str, Shard] = {}
        self._opening = threading.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="search-write")
        self._readers = ThreadPoolExecutor(QUERY_THREADS, thread_name_prefix="search-query")

    async def _write(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._writer, functools.partial(fn, *args))

    async def _read(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._readers, functools.partial(fn, *args))

    def _shard(self, tenant_id: str, *, create: bool) -> Shard | None:
        with self._opening:
            return self._open(tenant_id, create=create)

    def _open(self, tenant_id: str, *, create: bool) -> Shard | None:
        shard = self._shards.get(tenant_id)
        directory = self._root / _directory_name(tenant_id)
        if shard is None and (create or directory.exists()):
            shard = self._shards[tenant_id] = Shard(directory, tenant_id, self._compact_min_dead)
        if shard is not None:
            # A shard opened while `retune_compaction` ran may have been made with the old value.
            shard.compact_min_dead = self._compact_min_dead
        return shard

    def _every_shard(self) -> list[Shard]:
        """Every tenant's shard, opening those on disk not yet opened."""
        with self._opening:
            opened = {_directory_name(tenant) for tenant in self._shards}
            for directory in sorted(self._root.iterdir()):
                if directory.name not in opened and Shard.exists(directory):
                    self._open(Shard.tenant_of(directory), create=False)
            return list(self._shards.values())

    async def ensure(self) -> None:
        self._root.mkdir(parents=True, exist_ok=True)

    async def upsert(self, points: Sequence[Point]) -> None:
        by_tenant: dict[str, list[Point]] = {}
        for point in points:
            by_tenant.setdefault(point.payload["tenant_id"], []).append(point)
        await self._write(self._upsert, by_tenant)

    def _upsert(self, by_tenant: dict[str, list[Point]]) -> None:
        for tenant_id, points in by_tenant.items():
            shard = self._shard(tenant_id, create=True)
            assert shard is not None
            shard.upsert(points)

    async def delete(
        self, document_id: str, *, tenant_id: str | None = None, keep_atoms: Collection[str] = ()
    ) -> None:
        await self._write(self._delete, document_id, tenant_id, list(keep_atoms))

    def _delete(self, document_id: str, tenant_id: str | None, keep_atoms: list[str]) -> None:
        if tenant_id is None:
            shards = self._every_shard()
        else:
            shard = self._shard(tenant_id, create=False)
            shards = [] if shard is None else [shard]
        for shard in shards:
            shard.delete(document_id, keep_atoms)

    async def dense(self, vector: Sequence[float], where: Filter, limit: int) -> list[Hit]:
        return await self._read(self._query, "dense", vector, where, limit)

    async def sparse(self, terms: SparseVector, where: Filter, limit: int) -> list[Hit]:
        return await self._read(self._query, "sparse", terms, where, limit)

    def _searched(self, where: Filter) -> tuple[Shard, list[str]] | None:
        """The shard a query reads and its filter terms; None when the tenant has no shard."""
        shard = self._shard(where.tenant_id, create=False)
        if shard is None:
            return None
        return shard, [filter_term(key, value) for key, value in where.must]

    def _query(self, mode: str, probe: Any, where: Filter, limit: int) -> list[Hit]:
        if (searched := self._searched(where)) is None:
            return []
        shard, filters = searched
        ranked = (shard.dense if mode == "dense" else shard.sparse)(probe, filters, limit)
        return _with_payloads(shard, ranked)

    async def hybrid(
        self,
        vector: Sequence[float],
        terms: SparseVector,
        where: Filter,
        limit: int,
        candidates: int,
    ) -> list[Hit]:
        def both() -> list[Hit]:
            # One job for both rankings: each takes well under a millisecond, less than the
            # two thread hops that running them side by side would cost. The rankings fuse by
            # point id, and only the best `limit` have their payloads read.
            if (searched := self._searched(where)) is None:
                return []
            shard, filters = searched
            rankings = [
                shard.dense(vector, filters, candidates),
                shard.sparse(terms, filters, candidates),
            ]
            ids = shard.ids({row for ranking in rankings for row, _ in ranking})
            fused = fuse_by_reciprocal_rank(
                [
                    [Hit(ids[r], score, {}) for r, score in ranking if r in ids]
                    for ranking in rankings
                ],
                limit,
            )
            row_of = {point_id: row for row, point_id in ids.items()}
            return _with_payloads(shard, [(row_of[hit.id], hit.score) for hit in fused])

        return await self._read(both)

    async def count(self, tenant_id: str | None = None) -> int:
        return await self._read(self._count, tenant_id)

    def _count(self, tenant_id: str | None) -> int:
        if tenant_id is None:
            return sum(shard.count() for shard in self._every_shard())
        shard = self._shard(tenant_id, create=False)
        return 0 if shard is None else shard.count()

    async def scan(self) -> AsyncIterator[Point]:
        for shard in await self._read(self._every_shard):
            last = 0
            while page := await self._read(shard.points_after, last, SCAN_PAGE):
                last = page[-1][0]
                for _, point in page:
                    yield point

    def retune_compaction(self, min_dead: int) -> None:
        """Applies to every open shard and every shard opened later; a write checks it when it
        ends, so the next write compacts a shard whose dead slots now qualify."""
        if min_dead < 1:
            raise ValueError(f"min_dead is 1 or more, not {min_dead}")
        self._compact_min_dead = min_dead
        for shard in self._open_shards():
            shard.compact_min_dead = min_dead

    def dead_slots(self) -> int:
        """Over the open shards only: one not opened since the start has had no write here, and
        compacts only in one (which opens it)."""
        return sum(shard.dead_slots() for shard in self._open_shards())

    def _open_shards(self) -> list[Shard]:
        # Without the opening lock, which a write holds while a shard opens (seconds, when its
        # keyword index is rebuilt): the copy is one step under the GIL, never half a dict.
        return list(self._shards.values())

    async def close(self) -> None:
        self._readers.shutdown(wait=True)
        self._writer.shutdown(wait=True)
        for shard in self._shards.values():
            shard.close()
        self._shards.clear()


def _with_payloads(shard: Shard, ranked: Sequence[tuple[int, float]]) -> list[Hit]:
    """(row, score) pairs as hits with their point ids and payloads, in order; rows deleted
    meanwhile are left out."""
    payloads = shard.payloads([row for row, _ in ranked])
    return [
        Hit(payloads[row][0], score, payloads[row][1]) for row, score in ranked if row in payloads
    ]

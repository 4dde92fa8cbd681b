"""The vector-store port: what the search service needs of an engine.

It speaks the domain's types only (points with a dense vector and term counts, tenant-scoped
filters, hits). Two adapters implement it: the embedded store (embedded/), the default, and
Qdrant (qdrant.py) for production servers; `open_vector_store` (__init__.py) picks one."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Collection, Sequence

from services.search.domain import Filter, Hit, Point, SparseVector


class VectorStore(abc.ABC):
    @abc.abstractmethod
    async def ensure(self) -> None:
        """Create the collection (and its indexes) unless it exists."""

    @abc.abstractmethod
    async def upsert(self, points: Sequence[Point]) -> None:
        """Write points by id: a point that exists is replaced whole (vectors and payload)."""

    @abc.abstractmethod
    async def delete(
        self, document_id: str, *, tenant_id: str | None = None, keep_atoms: Collection[str] = ()
    ) -> None:
        """Delete a document's points (one tenant's, or every tenant's), except those of the
        chunks in `keep_atoms`."""

    @abc.abstractmethod
    async def dense(self, vector: Sequence[float], where: Filter, limit: int) -> list[Hit]:
        """Nearest points by cosine similarity."""

    @abc.abstractmethod
    async def sparse(self, terms: SparseVector, where: Filter, limit: int) -> list[Hit]:
        """Best BM25 matches; IDF is measured over the filter's tenant's points only, so one
        tenant's documents never shift another's scores."""

    @abc.abstractmethod
    async def hybrid(
        self,
        vector: Sequence[float],
        terms: SparseVector,
        where: Filter,
        limit: int,
        candidates: int,
    ) -> list[Hit]:
        """The best `candidates` of each of dense and sparse, fused by reciprocal rank, in one
        engine call."""

    @abc.abstractmethod
    async def count(self, tenant_id: str | None = None) -> int:
        """Points in the store (of one tenant)."""

    @abc.abstractmethod
    def scan(self) -> AsyncIterator[Point]:
        """Every point with its vectors (for audits: compare a rebuilt store with the live one)."""

    @abc.abstractmethod
    def retune_compaction(self, min_dead: int) -> None:
        """Compact a shard's dead slots once there are at least `min_dead` of them (and more
        than live ones), from the next write on; an engine that compacts itself ignores it."""

    @abc.abstractmethod
    def dead_slots(self) -> int | None:
        """Dead slots waiting for a compaction, over the open shards (None: the engine compacts
        itself and does not say)."""

    @abc.abstractmethod
    async def close(self) -> None: ...

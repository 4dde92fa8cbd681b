"""The Qdrant adapter of the vector-store port: a Qdrant server in production
(`HARTONOMOUS_QDRANT_URL`), or qdrant-client's local mode under `<data_dir>/qdrant` for small
embedded setups (`HARTONOMOUS_SEARCH_ENGINE=qdrant`; it searches exhaustively and slows down
past ~20k points, which is why it is not the embedded default)."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models

from services.search.domain import DIM, Filter, Hit, Point, SparseVector, bm25_weights
from services.search.vectors.port import VectorStore

T = TypeVar("T")

COLLECTION = "points"
DENSE = "dense"
SPARSE = "bm25"
COUNTS = "counts"
"""The points' term counts as given, never queried: BM25 weights (SPARSE) cannot be turned back
into counts, and `scan` returns points as they were written."""
UPSERT_BATCH = 256


def _match(key: str, value: str) -> models.FieldCondition:
    return models.FieldCondition(key=key, match=models.MatchValue(value=value))


def _tenant(tenant_id: str) -> models.Filter:
    return models.Filter(must=[_match("tenant_id", tenant_id)])


def _filter(where: Filter) -> models.Filter:
    conditions: list[models.Condition] = [_match("tenant_id", where.tenant_id)]
    conditions += [_match(key, value) for key, value in where.must]
    return models.Filter(must=conditions)


def _sparse(terms: SparseVector) -> models.SparseVector:
    return models.SparseVector(indices=list(terms.indices), values=list(terms.values))


def _hit(point: models.ScoredPoint) -> Hit:
    return Hit(str(point.id), point.score, point.payload or {})


class QdrantStore(VectorStore):
    def __init__(self, client: QdrantClient, *, server: bool, collection: str = COLLECTION):
        self._client = client
        self._server = server
        self._collection = collection
        # qdrant-client is synchronous; calls run off the event loop. Local mode is one
        # in-process engine that is not thread-safe, so it gets a single thread; a server
        # takes concurrent requests.
        self._executor = ThreadPoolExecutor(
            max_workers=8 if server else 1, thread_name_prefix="qdrant"
        )

    @classmethod
    def server(cls, url: str) -> QdrantStore:
        return cls(QdrantClient(url=url), server=True)

    @classmethod
    def local(cls, path: Path) -> QdrantStore:
        path.mkdir(parents=True, exist_ok=True)
        return cls(QdrantClient(path=str(path)), server=False)

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, functools.partial(fn, *args, **kwargs))

    async def ensure(self) -> None:
        if not await self._call(self._client.collection_exists, self._collection):
            try:
                await self._call(
                    self._client.create_collection,
                    self._collection,
                    vectors_config={
                        DENSE: models.VectorParams(size=DIM, distance=models.Distance.COSINE)
                    },
                    sparse_vectors_config={
                        SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF),
                        COUNTS: models.SparseVectorParams(),
                    },
                    # Every query filters by tenant: per-tenant HNSW graphs instead of a global
                    # one (Qdrant's multitenancy layout; local mode searches exhaustively).
                    hnsw_config=models.HnswConfigDiff(payload_m=16, m=0),
                )
            except Exception:
                # Another replica starting at the same moment may have created it first.
                if not await self._call(self._client.collection_exists, self._collection):
                    raise
        if self._server:  # local mode keeps no payload indexes; creating one twice is a no-op
            await self._index(
                "tenant_id",
                models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
            )
            for key in ("document_id", "atom_id", "model_version", "modality"):
                await self._index(key, models.PayloadSchemaType.KEYWORD)

    async def _index(
        self, key: str, schema: models.KeywordIndexParams | models.PayloadSchemaType
    ) -> None:
        await self._call(self._client.create_payload_index, self._collection, key, schema)

    async def upsert(self, points: Sequence[Point]) -> None:
        for start in range(0, len(points), UPSERT_BATCH):
            batch = [
                models.PointStruct(
                    id=p.id,
                    vector={
                        DENSE: list(p.dense),
                        SPARSE: _sparse(bm25_weights(p.sparse)),
                        COUNTS: _sparse(p.sparse),
                    },
                    payload=dict(p.payload),
                )
                for p in points[start : start + UPSERT_BATCH]
            ]
            await self._call(self._client.upsert, self._collection, batch, wait=True)

    async def delete(
        self, document_id: str, *, tenant_id: str | None = None, keep_atoms: Collection[str] = ()
    ) -> None:
        must: list[models.Condition] = [_match("document_id", document_id)]
        if tenant_id is not None:
            must.append(_match("tenant_id", tenant_id))
        keep: list[models.Condition] = [
            models.FieldCondition(key="atom_id", match=models.MatchAny(any=list(keep_atoms)))
        ]
        selector = models.FilterSelector(
            filter=models.Filter(must=must, must_not=keep if keep_atoms else None)
        )
        await self._call(self._client.delete, self._collection, selector, wait=True)

    async def dense(self, vector: Sequence[float], where: Filter, limit: int) -> list[Hit]:
        reply = await self._call(
            self._client.query_points,
            self._collection,
            query=list(vector),
            using=DENSE,
            query_filter=_filter(where),
            limit=limit,
        )
        return [_hit(p) for p in reply.points]

    def _idf(self, where: Filter) -> models.SearchParams:
        return models.SearchParams(idf=models.IdfCorpusParams(corpus=_tenant(where.tenant_id)))

    async def sparse(self, terms: SparseVector, where: Filter, limit: int) -> list[Hit]:
        reply = await self._call(
            self._client.query_points,
            self._collection,
            query=_sparse(terms),
            using=SPARSE,
            query_filter=_filter(where),
            search_params=self._idf(where),
            limit=limit,
        )
        return [_hit(p) for p in reply.points]

    async def hybrid(
        self,
        vector: Sequence[float],
        terms: SparseVector,
        where: Filter,
        limit: int,
        candidates: int,
    ) -> list[Hit]:
        scope = _filter(where)
        prefetch = [
            models.Prefetch(query=list(vector), using=DENSE, filter=scope, limit=candidates),
            models.Prefetch(
                query=_sparse(terms),
                using=SPARSE,
                filter=scope,
                params=self._idf(where),
                limit=candidates,
            ),
        ]
        reply = await self._call(
            self._client.query_points,
            self._collection,
            prefetch=prefetch,
            # Qdrant's RRF: a candidate at 0-based position p adds 1/(p + 2) (domain.RRF_OFFSET).
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            query_filter=scope,  # the prefetches are filtered already; this keeps it explicit
            limit=limit,
        )
        return [_hit(p) for p in reply.points]

    async def count(self, tenant_id: str | None = None) -> int:
        where = None if tenant_id is None else _tenant(tenant_id)
        reply = await self._call(
            self._client.count, self._collection, count_filter=where, exact=True
        )
        return int(reply.count)

    async def scan(self) -> AsyncIterator[Point]:
        offset: Any = None
        while True:
            records, offset = await self._call(
                self._client.scroll,
                self._collection,
                limit=UPSERT_BATCH,
                offset=offset,
                with_vectors=True,
            )
            for record in records:
                vectors: Any = record.vector
                terms = vectors[COUNTS]
                yield Point(
                    str(record.id),
                    list(vectors[DENSE]),
                    SparseVector(tuple(terms.indices), tuple(terms.values)),
                    record.payload or {},
                )
            if offset is None:
                return

    async def close(self) -> None:
        await self._call(self._client.close)
        self._executor.shutdown(wait=True)

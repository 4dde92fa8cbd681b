"""The Qdrant adapter of the vector-store port: a Qdrant server in production
(`HARTONOMOUS_QDRANT_URL`), or qdrant-client's local mode under `<data_dir>/qdrant` for small
embedded setups (`HARTONOMOUS_SEARCH_ENGINE=qdrant`; it searches exhaustively and slows down
past ~20k points, which is why it is not the embedded default).

BM25. Qdrant scores a sparse query as the sum, over its terms, of the IDF (measured by Qdrant
over the querying tenant's points) times the point's stored weight; the length normalisation is
ours to bake into that weight: tf*(k1+1) / (tf + k1*(1-b+b*len/avg)). `len` is rounded as the
embedded engine's BM25 index (tantivy, like Lucene) stores it (domain.bm25_length), and `avg`
has to be the tenant's own average length, as that index measures it, or the engines rank
differently: over 10k real paragraphs, Qdrant's top 10 of a sparse query held 0.83 of the
embedded engine's with a fixed AVG_LEN, 0.98 with the tenant's average as kept below
(bench/search_congruence.py), and all of it, but for ties cut differently, with the exact one.

So every point of a tenant is weighted with one average, named by the tenant's record in a side
collection (`<collection>_bm25`: `avg_len`, and `reweighting` while a re-weight is under way).
This process keeps the tenant's length statistics (points, terms): measured from the stored raw
counts (COUNTS) when it first writes the tenant (one read of them; queries never need it),
then moved by each write: an upsert by its points less those it replaces (read before the
write), a delete by the points it removes (read before the delete). When a write leaves the tenant's true average more than REWEIGHT_TOLERANCE away from `avg_len`,
every point of the tenant is re-weighted from its stored counts, and the record then names the
new average.

- Amortised: a re-weight follows a 5% move of the average. Growth moves it down 5% only once
  the points grew 5%, and up 5% only once the terms grew 5%, so a tenant growing from 0 to N
  points (of bounded length: chunks) is re-weighted O(log N) times, O(N) work in all.
- Restarts and crashes: nothing lives only in memory. The statistics are re-measured from
  COUNTS; a record still `reweighting` is a re-weight a crash cut short, and a tenant without
  a record has points weighted before records existed: both are re-weighted on first use.
- Several writers (search replicas on one server): each reads the tenant's record before it
  writes, and re-measures when another replica re-weighted the tenant meanwhile. Points a
  replica writes while another re-weights keep the previous average (within about the
  tolerance of the true one) until the tenant's next re-weight."""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from qdrant_client import QdrantClient, models

from services.search.domain import (
    AVG_LEN,
    DIM,
    Filter,
    Hit,
    Lengths,
    Point,
    SparseVector,
    bm25_weights,
)
from services.search.vectors.port import VectorStore

T = TypeVar("T")

COLLECTION = "points"
DENSE = "dense"
SPARSE = "bm25"
COUNTS = "counts"
"""The points' term counts as given, never queried: BM25 weights (SPARSE) are computed from
them, again whenever the tenant's average length moves, and `scan` returns them as written."""
UPSERT_BATCH = 256
SCROLL_PAGE = 1024
REWEIGHT_TOLERANCE = 0.05
"""How far (a fraction) a tenant's true average length may drift from the one its weights use
before they are recomputed. math.inf weighs a new tenant with AVG_LEN for good, as the adapter
did before it kept statistics (bench/search_congruence.py compares the two)."""
_RECORDS = uuid.uuid5(uuid.NAMESPACE_URL, "hartonomous:search:bm25-average")


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


def _counts(record: models.Record) -> SparseVector:
    vectors: Any = record.vector
    terms = vectors[COUNTS]
    return SparseVector(tuple(terms.indices), tuple(terms.values))


def _hit(point: models.ScoredPoint) -> Hit:
    return Hit(str(point.id), point.score, point.payload or {})


def _record_id(tenant_id: str) -> str:
    return str(uuid.uuid5(_RECORDS, tenant_id))


def _lengths_by_tenant(points: Iterable[tuple[str, SparseVector]]) -> dict[str, Lengths]:
    found: dict[str, Lengths] = defaultdict(Lengths)
    for tenant_id, counts in points:
        found[tenant_id] += Lengths.of([counts])
    return found


@dataclass(frozen=True)
class Weighting:
    """A tenant's record: the average length its points' weights use."""

    avg_len: float = AVG_LEN
    reweighting: bool = False


@dataclass
class TenantLengths:
    """What this process knows of a tenant: its record, and its statistics as of its writes."""

    weighting: Weighting
    lengths: Lengths


class QdrantStore(VectorStore):
    def __init__(
        self,
        client: QdrantClient,
        *,
        server: bool,
        collection: str = COLLECTION,
        reweight_tolerance: float = REWEIGHT_TOLERANCE,
    ):
        self._client = client
        self._server = server
        self._collection = collection
        self._records = f"{collection}_bm25"
        self._tolerance = reweight_tolerance
        self._tenants: dict[str, TenantLengths] = {}
        # A write reads a tenant's statistics and then moves them: writes of this process take
        # turns (the projection writes one batch at a time anyway).
        self._writing = asyncio.Lock()
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
        await self._create(
            self._collection,
            vectors_config={DENSE: models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
            sparse_vectors_config={
                SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF),
                COUNTS: models.SparseVectorParams(),
            },
            # Every query filters by tenant: per-tenant HNSW graphs instead of a global
            # one (Qdrant's multitenancy layout; local mode searches exhaustively).
            hnsw_config=models.HnswConfigDiff(payload_m=16, m=0),
        )
        await self._create(self._records, vectors_config={})  # read by id only
        if self._server:  # local mode keeps no payload indexes; creating one twice is a no-op
            await self._index(
                "tenant_id",
                models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD, is_tenant=True),
            )
            for key in ("document_id", "atom_id", "model_version", "modality"):
                await self._index(key, models.PayloadSchemaType.KEYWORD)

    async def _create(self, name: str, **config: Any) -> None:
        if await self._call(self._client.collection_exists, name):
            return
        try:
            await self._call(self._client.create_collection, name, **config)
        except Exception:
            # Another replica starting at the same moment may have created it first.
            if not await self._call(self._client.collection_exists, name):
                raise

    async def _index(
        self, key: str, schema: models.KeywordIndexParams | models.PayloadSchemaType
    ) -> None:
        await self._call(self._client.create_payload_index, self._collection, key, schema)

    # -- writes ---------------------------------------------------------------------------

    async def upsert(self, points: Sequence[Point]) -> None:
        async with self._writing:
            for start in range(0, len(points), UPSERT_BATCH):
                await self._upsert(points[start : start + UPSERT_BATCH])

    async def _upsert(self, batch: Sequence[Point]) -> None:
        latest = list({p.id: p for p in batch}.values())  # a point named twice: the last wins
        replaced = await self._call(
            self._client.retrieve,
            self._collection,
            [p.id for p in latest],
            with_payload=["tenant_id"],
            with_vectors=[COUNTS],
        )
        change = _lengths_by_tenant((p.payload["tenant_id"], p.sparse) for p in latest)
        for tenant_id, gone in _lengths_by_tenant(
            ((r.payload or {})["tenant_id"], _counts(r)) for r in replaced
        ).items():
            change[tenant_id] -= gone
        tenants = {tenant_id: await self._tenant(tenant_id) for tenant_id in change}
        structs = [
            models.PointStruct(
                id=p.id,
                vector={
                    DENSE: list(p.dense),
                    SPARSE: _sparse(
                        bm25_weights(p.sparse, tenants[p.payload["tenant_id"]].weighting.avg_len)
                    ),
                    COUNTS: _sparse(p.sparse),
                },
                payload=dict(p.payload),
            )
            for p in latest
        ]
        await self._call(self._client.upsert, self._collection, structs, wait=True)
        for tenant_id, delta in change.items():
            await self._moved(tenant_id, tenants[tenant_id], delta)

    async def delete(
        self, document_id: str, *, tenant_id: str | None = None, keep_atoms: Collection[str] = ()
    ) -> None:
        must: list[models.Condition] = [_match("document_id", document_id)]
        if tenant_id is not None:
            must.append(_match("tenant_id", tenant_id))
        keep: list[models.Condition] = [
            models.FieldCondition(key="atom_id", match=models.MatchAny(any=list(keep_atoms)))
        ]
        doomed = models.Filter(must=must, must_not=keep if keep_atoms else None)
        async with self._writing:
            gone = _lengths_by_tenant(
                [
                    ((r.payload or {})["tenant_id"], _counts(r))
                    async for r in self._scroll(doomed, payload=["tenant_id"], vectors=[COUNTS])
                ]
            )
            tenants = {tenant: await self._tenant(tenant) for tenant in gone}
            selector = models.FilterSelector(filter=doomed)
            await self._call(self._client.delete, self._collection, selector, wait=True)
            for tenant, lengths in gone.items():
                await self._moved(tenant, tenants[tenant], Lengths() - lengths)

    # -- BM25 statistics ------------------------------------------------------------------

    async def _tenant(self, tenant_id: str) -> TenantLengths:
        """The tenant's statistics, measured when this process has none or another replica
        re-weighted the tenant since; a re-weight that a crash cut short, or weights that
        stray from the true average, are re-weighted first."""
        weighting = await self._weighting(tenant_id)
        known = self._tenants.get(tenant_id)
        if known is not None and known.weighting == weighting:
            return known
        lengths = Lengths()
        async for page in self._pages(_tenant(tenant_id), vectors=[COUNTS]):
            lengths += Lengths.of(_counts(r) for r in page)
        known = self._tenants[tenant_id] = TenantLengths(weighting, lengths)
        if weighting.reweighting or lengths.strays_from(weighting.avg_len, self._tolerance):
            await self._reweight(tenant_id, known)
        return known

    async def _moved(self, tenant_id: str, tenant: TenantLengths, delta: Lengths) -> None:
        tenant.lengths += delta
        if tenant.lengths.strays_from(tenant.weighting.avg_len, self._tolerance):
            await self._reweight(tenant_id, tenant)

    async def _reweight(self, tenant_id: str, tenant: TenantLengths) -> None:
        """Weigh every point of the tenant with its true average length, from stored counts."""
        await self._record(tenant_id, Weighting(tenant.weighting.avg_len, reweighting=True))
        avg_len = tenant.lengths.average
        while True:
            measured = Lengths()
            async for page in self._pages(_tenant(tenant_id), vectors=[COUNTS]):
                vectors = [
                    models.PointVectors(
                        id=r.id, vector={SPARSE: _sparse(bm25_weights(_counts(r), avg_len))}
                    )
                    for r in page
                ]
                await self._call(self._client.update_vectors, self._collection, vectors, wait=True)
                measured += Lengths.of(_counts(r) for r in page)
            # Another replica may have written the tenant meanwhile: the pass measured it.
            if not measured.strays_from(avg_len, self._tolerance):
                break
            avg_len = measured.average
        tenant.weighting, tenant.lengths = Weighting(avg_len), measured
        await self._record(tenant_id, tenant.weighting)

    async def _weighting(self, tenant_id: str) -> Weighting:
        found = await self._call(self._client.retrieve, self._records, [_record_id(tenant_id)])
        if not found:  # any points were weighted before records: their weighting is unknown
            return Weighting(reweighting=True)
        payload = found[0].payload or {}
        return Weighting(float(payload["avg_len"]), bool(payload["reweighting"]))

    async def _record(self, tenant_id: str, weighting: Weighting) -> None:
        payload = {
            "tenant_id": tenant_id,
            "avg_len": weighting.avg_len,
            "reweighting": weighting.reweighting,
        }
        record = models.PointStruct(id=_record_id(tenant_id), vector={}, payload=payload)
        await self._call(self._client.upsert, self._records, [record], wait=True)

    async def _pages(
        self, where: models.Filter | None, *, payload: Any = False, vectors: Any = False
    ) -> AsyncIterator[list[models.Record]]:
        offset: Any = None
        while True:
            records, offset = await self._call(
                self._client.scroll,
                self._collection,
                scroll_filter=where,
                limit=SCROLL_PAGE,
                offset=offset,
                with_payload=payload,
                with_vectors=vectors,
            )
            if records:
                yield records
            if offset is None:
                return

    async def _scroll(
        self, where: models.Filter | None, *, payload: Any = False, vectors: Any = False
    ) -> AsyncIterator[models.Record]:
        async for page in self._pages(where, payload=payload, vectors=vectors):
            for record in page:
                yield record

    # -- queries --------------------------------------------------------------------------

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
        async for record in self._scroll(None, payload=True, vectors=True):
            vectors: Any = record.vector
            yield Point(str(record.id), list(vectors[DENSE]), _counts(record), record.payload or {})

    def retune_compaction(self, min_dead: int) -> None:
        """Ignored: Qdrant's optimizers vacuum deleted points themselves, by their own
        thresholds (the collection's optimizer config), so there is nothing to retune here."""

    def dead_slots(self) -> int | None:
        return None  # Qdrant compacts itself and does not count what waits for it

    async def close(self) -> None:
        await self._call(self._client.close)
        self._executor.shutdown(wait=True)

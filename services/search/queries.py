"""The read side: answer one validated query from the vector store, in the query's mode.

A dense or hybrid query's vector comes from the query cache when it holds it, else from
inference's Embed (query_cache.py); every such query is counted by the repeated-query meter,
whether the cache is on or not."""

from __future__ import annotations

from hartonomous.telemetry import span
from services.search import domain
from services.search.domain import FUSION_CANDIDATES, Found, Mode, QueryVector, SearchQuery
from services.search.embedder import Embedder
from services.search.query_cache import QueryCache, RepeatMeter
from services.search.store import JoinStore
from services.search.vectors.port import VectorStore


class Searcher:
    def __init__(
        self,
        store: VectorStore,
        embedder: Embedder,
        joins: JoinStore,
        cache: QueryCache | None = None,
        repeats: RepeatMeter | None = None,
    ) -> None:
        """`cache`: default one of size 0 (off)."""
        self._store = store
        self._embedder = embedder
        self._joins = joins
        self.cache = QueryCache() if cache is None else cache
        self.repeats = RepeatMeter() if repeats is None else repeats

    async def search(self, query: SearchQuery, traceparent: str | None = None) -> Found:
        """Raises EmbedderUnavailable when a dense or hybrid query cannot be embedded."""
        terms = domain.query_terms(query.text)
        if query.mode is Mode.SPARSE:
            # Sparse scores need no model, so no model version narrows the points: each chunk
            # has one point per model, and the best of them stands for it.
            models = await self._joins.model_versions()
            with span("search: store query"):
                hits = await self._store.sparse(terms, query.filter(), query.k * max(1, models))
            return Found(domain.distinct_chunks(hits, query.k))
        with span("search: embed query"):
            embedded = await self._embed(query, traceparent)
        where = query.filter(embedded.model_version)
        with span("search: store query"):
            if query.mode is Mode.DENSE:
                hits = await self._store.dense(embedded.vector, where, query.k)
            else:
                candidates = max(query.k, FUSION_CANDIDATES)
                hits = await self._store.hybrid(embedded.vector, terms, where, query.k, candidates)
        return Found(hits, embedded.usage)

    async def _embed(self, query: SearchQuery, traceparent: str | None) -> QueryVector:
        self.repeats.observe(query.tenant_id, query.text)
        cached = self.cache.get(query.tenant_id, query.text)
        if cached is not None:
            return cached
        embedded = await self._embedder.embed(query.tenant_id, query.text, traceparent)
        self.cache.put(query.tenant_id, query.text, embedded)
        return embedded

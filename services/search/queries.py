"""The read side: answer one validated query from the vector store, in the query's mode."""

from __future__ import annotations

from services.search import domain
from services.search.domain import FUSION_CANDIDATES, Hit, Mode, SearchQuery
from services.search.embedder import Embedder
from services.search.store import JoinStore
from services.search.vectors.port import VectorStore


class Searcher:
    def __init__(self, store: VectorStore, embedder: Embedder, joins: JoinStore) -> None:
        self._store = store
        self._embedder = embedder
        self._joins = joins

    async def search(self, query: SearchQuery, traceparent: str | None = None) -> list[Hit]:
        """Raises EmbedderUnavailable when a dense or hybrid query cannot be embedded."""
        terms = domain.query_terms(query.text)
        if query.mode is Mode.SPARSE:
            # Sparse scores need no model, so no model version narrows the points: each chunk
            # has one point per model, and the best of them stands for it.
            models = await self._joins.model_versions()
            hits = await self._store.sparse(terms, query.filter(), query.k * max(1, models))
            return domain.distinct_chunks(hits, query.k)
        embedded = await self._embedder.embed(query.tenant_id, query.text, traceparent)
        where = query.filter(embedded.model_version)
        if query.mode is Mode.DENSE:
            return await self._store.dense(embedded.vector, where, query.k)
        candidates = max(query.k, FUSION_CANDIDATES)
        return await self._store.hybrid(embedded.vector, terms, where, query.k, candidates)

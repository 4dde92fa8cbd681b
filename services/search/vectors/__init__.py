"""The search service's vector-store port and its adapters; `open_vector_store` picks one from
settings (configuration only): a Qdrant server when HARTONOMOUS_QDRANT_URL is set, else the
embedded store under the data dir, or qdrant-client's local mode when HARTONOMOUS_SEARCH_ENGINE
is "qdrant"."""

from __future__ import annotations

from hartonomous.settings import Settings
from services.search.vectors.port import VectorStore

__all__ = ["ENGINES", "VectorStore", "open_vector_store"]

ENGINES = ("embedded", "qdrant")


def open_vector_store(settings: Settings) -> VectorStore:
    """An unopened store for the configured engine (`ensure` creates what it needs)."""
    if settings.qdrant_url:
        from services.search.vectors.qdrant import QdrantStore

        return QdrantStore.server(settings.qdrant_url)
    if settings.search_engine == "embedded":
        from services.search.vectors.embedded.engine import EmbeddedStore

        return EmbeddedStore(settings.data_dir / "search")
    if settings.search_engine == "qdrant":
        from services.search.vectors.qdrant import QdrantStore

        return QdrantStore.local(settings.data_dir / "qdrant")
    raise ValueError(
        f"HARTONOMOUS_SEARCH_ENGINE must be one of {', '.join(ENGINES)};"
        f" got {settings.search_engine!r}"
    )

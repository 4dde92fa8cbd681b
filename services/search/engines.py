"""Which vector store the search service runs on, from the settings."""

from __future__ import annotations

from hartonomous.settings import Settings
from services.search.embedded.store import EmbeddedStore
from services.search.qdrant_store import QdrantStore
from services.search.store import VectorStore

ENGINES = ("embedded", "qdrant")


def open_vector_store(settings: Settings) -> VectorStore:
    """A Qdrant server when `qdrant_url` is set; else the embedded store under the data dir, or
    qdrant-client's local mode when `search_engine` is "qdrant"."""
    if settings.qdrant_url:
        return QdrantStore.server(settings.qdrant_url)
    if settings.search_engine == "embedded":
        return EmbeddedStore(settings.data_dir / "search")
    if settings.search_engine == "qdrant":
        return QdrantStore.local(settings.data_dir / "qdrant")
    raise ValueError(
        f"HARTONOMOUS_SEARCH_ENGINE must be one of {', '.join(ENGINES)};"
        f" got {settings.search_engine!r}"
    )

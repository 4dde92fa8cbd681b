"""The provenance graph's port and its adapters; `open_graph_store` picks one from settings
(configuration only): Neo4j when HARTONOMOUS_NEO4J_URI is set, else the embedded ladybug file
under the data dir."""

from __future__ import annotations

from pathlib import Path

from hartonomous.settings import Settings
from services.provenance.graph.port import GraphStore, GraphStoreError

__all__ = ["GraphStore", "GraphStoreError", "embedded_path", "open_graph_store"]

NEO4J_USER = "neo4j"


def embedded_path(data_dir: Path) -> Path:
    return data_dir / "graph" / "provenance.lbug"


def open_graph_store(settings: Settings) -> GraphStore:
    """An unopened store for the configured engine."""
    if settings.neo4j_uri:
        from services.provenance.graph.neo4j import Neo4jGraphStore

        return Neo4jGraphStore(
            settings.neo4j_uri, settings.neo4j_user or NEO4J_USER, settings.neo4j_password or ""
        )
    from services.provenance.graph.embedded import EmbeddedGraphStore

    return EmbeddedGraphStore(embedded_path(settings.data_dir))

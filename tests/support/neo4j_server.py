"""A real Neo4j server for the suite: NEO4J_URI when set, else the local Community server that
deploy/local/neo4j.sh runs from Maven Central jars (started once per run, and stopped
with it unless HARTONOMOUS_KEEP_SERVERS is set). Neo4j tests are required: when no server can
be had they fail, never skip."""

from __future__ import annotations

import os

from tests.support.local_server import local_server

_DEFAULT_PASSWORD = "hartonomous-test"


def neo4j_uri() -> str:
    """The bolt URI of a running server."""
    return os.environ.get("NEO4J_URI") or local_server("neo4j.sh", "Neo4j")


def neo4j_auth() -> tuple[str, str]:
    """User and password of that server (what neo4j.sh set up, unless NEO4J_URI names another)."""
    return (
        os.environ.get("NEO4J_USER", "neo4j"),
        os.environ.get("NEO4J_PASSWORD", _DEFAULT_PASSWORD),
    )

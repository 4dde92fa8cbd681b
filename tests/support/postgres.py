"""A real Postgres for the suite: the embedded server, or HARTONOMOUS_TEST_POSTGRES_URL if set.

Each test gets a database of its own, so tests never see each other's rows."""

from __future__ import annotations

import os
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from hartonomous.postgres import embedded_postgres_url

_server_url: str | None = None


def server_url() -> str:
    global _server_url
    if _server_url is None:
        _server_url = os.environ.get("HARTONOMOUS_TEST_POSTGRES_URL") or embedded_postgres_url(
            Path(tempfile.mkdtemp(prefix="hartonomous-test-pg-")) / "pgdata", cleanup="delete"
        )
    return _server_url


def with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + database))


async def fresh_database() -> str:
    """Create an empty database and return its URL."""
    name = "t_" + uuid.uuid4().hex[:16]
    conn = await asyncpg.connect(server_url())
    try:
        await conn.execute(f'create database "{name}"')
    finally:
        await conn.close()
    return with_database(server_url(), name)

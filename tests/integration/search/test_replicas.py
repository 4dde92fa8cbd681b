"""Search replicas that keep projections of their own (HARTONOMOUS_SEARCH_REPLICA) share the
Postgres server but not their join state: each its own schema and consumer group."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from hartonomous.postgres import create_pool
from services.search.service import projection_names
from services.search.store import Document, JoinStore, Reference
from tests.support.postgres import fresh_database


def test_a_replica_is_named_into_its_own_group_and_schema() -> None:
    assert projection_names(None) == ("search", "search")
    assert projection_names("r2") == ("search-r2", "search_r2")
    with pytest.raises(ValueError, match="HARTONOMOUS_SEARCH_REPLICA"):
        projection_names("r2; drop schema search")


async def test_replicas_keep_their_join_state_apart() -> None:
    pool = await create_pool(await fresh_database(), max_size=2)
    try:
        first, second = JoinStore(pool, "search_r1"), JoinStore(pool, "search_r2")
        assert await first.setup() is False and await second.setup() is False
        now = datetime.now(UTC)
        await first.add_document(
            Document("d" * 64, "text", "text/plain", "0001"),
            Reference("acme", "d" * 64, {}, now, "0001"),
        )
        assert await _documents(pool, "search_r1") == 1
        assert await _documents(pool, "search_r2") == 0
    finally:
        await pool.close()


async def _documents(pool: asyncpg.Pool, schema: str) -> int:
    return int(await pool.fetchval(f"select count(*) from {schema}.documents"))

"""The search service rebuilds its index from the log when it starts on a store that lost its
points (deleted files, or a new engine chosen) or on join state of an older schema version."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from hartonomous.settings import Settings
from services.search.service import SearchService
from services.search.vectors import open_vector_store
from tests.support.harness import running
from tests.support.search_corpus import package_docs
from tests.support.search_projection import (
    open_projection,
    publish_for,
    random_embeddings,
    snapshot,
)


async def _forget_the_join_state_version(pg_url: str, data_dir: Path) -> None:
    conn = await asyncpg.connect(pg_url)
    try:
        await conn.execute("update search.version set version = 1")
    finally:
        await conn.close()


async def _lose_the_store(pg_url: str, data_dir: Path) -> None:
    shutil.rmtree(data_dir / "search")


@pytest.mark.parametrize("damage", [_lose_the_store, _forget_the_join_state_version])
async def test_the_service_rebuilds_its_index_from_the_log(
    pg_url: str, tmp_path: Path, damage: object
) -> None:
    docs = package_docs()[:3]
    settings = Settings(data_dir=tmp_path)
    async with open_projection(pg_url, tmp_path) as live:
        await publish_for(live, docs, random_embeddings(docs))
        await live.run()
        expected = await snapshot(live.store)
    assert callable(damage)
    await damage(pg_url, tmp_path)

    async with running(SearchService(), pg_url=pg_url, settings=settings, consume=False):
        pass  # starting is what rebuilds
    store = open_vector_store(settings)
    try:
        assert await snapshot(store) == expected
    finally:
        await store.close()

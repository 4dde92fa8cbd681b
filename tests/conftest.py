from __future__ import annotations

import pytest

from tests.support.postgres import fresh_database


@pytest.fixture
async def pg_url() -> str:
    """A new, empty database on the suite's real Postgres server."""
    return await fresh_database()

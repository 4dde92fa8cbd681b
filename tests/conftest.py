from __future__ import annotations

import pytest

from services.inference.models.minilm import MiniLM, load_minilm
from tests.support.local_server import stop_started
from tests.support.postgres import fresh_database


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Kafka and Neo4j, when this run started them, stop with it."""
    stop_started()


@pytest.fixture
async def pg_url() -> str:
    """A new, empty database on the suite's real Postgres server."""
    return await fresh_database()


@pytest.fixture(scope="session")
def model() -> MiniLM:
    """The real model, loaded once for the session (weights and version hash take seconds)."""
    return load_minilm()

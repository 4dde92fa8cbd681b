from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from hartonomous.blobs.embedded import DirectoryBlobStore
from hartonomous.events import Event
from hartonomous.events.payloads import Payload
from hartonomous.settings import Settings
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc
from services.ingest.handlers import HANDLERS, Deps
from services.ingest.service import IngestService
from services.ingest.store import Catalog
from services.ingest.tunables import CATALOG_GROUP
from tests.support.harness import Started, running
from tests.support.postgres import fresh_database

LIMIT = 1 << 20
"""The service under test takes at most 1 MiB, so "too big" is cheap to send."""

CATALOG_TABLES = (
    "atoms",
    "refs",
    "chunk_sets",
    "chunks",
    "model_versions",
    "model_tensors",
    "model_promotions",
)

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8


class Platform(Started[IngestService]):
    """The ingest service started by the test harness (its catalog projection not running
    unless a test runs it), on a real blob directory."""

    @property
    def stub(self) -> ingest_pb2_grpc.IngestStub:
        return ingest_pb2_grpc.IngestStub(self.harness.channel)

    @property
    def deps(self) -> Deps:
        assert self.service.deps is not None
        return self.service.deps

    @property
    def blobs(self) -> DirectoryBlobStore:
        assert isinstance(self.deps.blobs, DirectoryBlobStore)
        return self.deps.blobs

    async def ingest(
        self, data: bytes, tenant_id: str = "acme", part: int = 64 * 1024, **header: Any
    ) -> ingest_pb2.IngestReply:
        reply: ingest_pb2.IngestReply = await self.stub.IngestAtom(
            requests(data, tenant_id=tenant_id, part=part, **header)
        )
        return reply

    async def read(self, tenant_id: str, atom_id: str) -> bytes:
        call = self.stub.ReadAtom(ingest_pb2.ReadAtomRequest(tenant_id=tenant_id, atom_id=atom_id))
        return b"".join([message.data async for message in call])

    def blob_files(self) -> list[Path]:
        """Every stored blob and every temp file the store left behind."""
        root = self.blobs.root
        return sorted(p for p in root.rglob("*") if p.is_file())

    async def catalog_rows(self) -> dict[str, list[tuple[Any, ...]]]:
        return await catalog_rows(self.pg_url)


async def catalog_rows(pg_url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every catalog table's rows, sorted: what "two catalogs are equal" compares."""
    conn = await asyncpg.connect(pg_url)
    try:
        return {
            table: sorted(tuple(r) for r in await conn.fetch(f"select * from ingest.{table}"))
            for table in CATALOG_TABLES
        }
    finally:
        await conn.close()


async def rebuilt_catalog(events: Iterable[Event[Payload]]) -> dict[str, list[tuple[Any, ...]]]:
    """A catalog made afresh from these events, applied in the order given: its rows."""
    url = await fresh_database()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2)
    assert pool is not None
    try:
        catalog = Catalog(pool, CATALOG_GROUP)
        await catalog.setup()
        async with catalog.transaction() as tx:
            for event in events:
                await HANDLERS[type(event.payload)](tx, event)
    finally:
        await pool.close()
    return await catalog_rows(url)


def requests(
    data: bytes, *, tenant_id: str = "acme", part: int = 64 * 1024, **header: Any
) -> Iterable[ingest_pb2.IngestRequest]:
    yield ingest_pb2.IngestRequest(header=ingest_pb2.IngestHeader(tenant_id=tenant_id, **header))
    for start in range(0, len(data), part):
        yield ingest_pb2.IngestRequest(data=data[start : start + part])


async def stream(data: bytes) -> AsyncIterator[bytes]:
    yield data


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


VOCABULARY = [
    "the",
    "ledger",
    "is",
    "truth",
    "atoms",
    "stored",
    "once",
    "by",
    "content",
    "address",
    "événement",
    "naïve",
    "café",
    "東京",
    "données",
    "überprüfung,",
    "replay;",
    "audit!",
]


def prose(words: int, seed: int = 0) -> str:
    """Deterministic multi-paragraph text with accents and CJK, so bytes != characters."""
    out: list[str] = []
    for i in range(words):
        out.append(VOCABULARY[(i * 7 + seed * 13 + i // 5) % len(VOCABULARY)])
        if i % 97 == 96:
            out.append("\n\n")
    return " ".join(out)


@pytest.fixture
async def platform(pg_url: str, tmp_path: Path) -> AsyncIterator[Platform]:
    service = IngestService(max_content_bytes=LIMIT, gc_every=None, storage_every=None)
    settings = Settings(data_dir=tmp_path / "data")
    async with running(service, pg_url=pg_url, settings=settings, consume=False) as harness:
        yield Platform(service, harness)


def event_types(events: Sequence[Event[Payload]]) -> list[str]:
    return [e.event_type for e in events]

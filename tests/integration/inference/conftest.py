from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hartonomous.blobs import BlobStore, open_blob_store
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec, Event, decode_event
from hartonomous.runtime.service import ServiceContext, Wiring
from hartonomous.settings import Settings
from services.inference import InferenceService
from services.inference.models.minilm import MiniLM, load_minilm
from services.inference.service import WarmupPlan


@pytest.fixture(scope="session")
def model() -> MiniLM:
    """The real model, loaded once for the session (weights and version hash take seconds)."""
    return load_minilm()


@dataclass
class Running:
    """The inference service started on a real embedded log and a real blob directory."""

    service: InferenceService
    wiring: Wiring
    log: EmbeddedEventLog
    codec: AvroCodec
    blobs: BlobStore

    async def events(self, topic: str) -> list[Event]:
        return [decode_event(self.codec, r) async for r in self.log.replay(topic, from_offset=0)]


@pytest.fixture
async def running(model: MiniLM, pg_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    log = EmbeddedEventLog(pg_url, heartbeat_interval=0.3, session_timeout=3.0)
    await log.start()
    await log.ensure_topics(platform_topics(partitions=2))
    settings = Settings(data_dir=tmp_path / "data")
    codec = AvroCodec()
    # No warm-up: shapes compile on first use, once per process for the whole suite.
    service = InferenceService(model=model, warmup=WarmupPlan(max_rows=0, cache=False))
    wiring = await service.start(ServiceContext(settings, log, codec, pg_url))
    try:
        yield Running(service, wiring, log, codec, open_blob_store(settings))
    finally:
        await service.stop()
        await log.close()

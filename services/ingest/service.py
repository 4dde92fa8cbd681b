"""Wiring: the catalog pool, the blob store and the tokenizer shared by the gRPC API and the
catalog consumer, the periodic sweep of orphan blobs, and storage metering."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import asyncpg

from hartonomous.blobs import DirectoryBlobStore, open_blob_store
from hartonomous.postgres import create_pool
from hartonomous.runtime.consumer import ConsumerLoop
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.service import Service, ServiceContext, Wiring
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc
from services.ingest import domain
from services.ingest.api import IngestApi
from services.ingest.chunking import TextChunker
from services.ingest.domain import ChunkPolicy
from services.ingest.gc import garbage_collect_orphans
from services.ingest.handlers import Deps, catalog_handler
from services.ingest.metering import StorageMeter
from services.ingest.store import Catalog

log = logging.getLogger(__name__)

GROUP = "ingest-catalog"
GRPC_SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name


class IngestService(Service):
    name = "ingest"

    def __init__(
        self,
        *,
        max_content_bytes: int = domain.MAX_CONTENT_BYTES,
        chunking: ChunkPolicy | None = None,
        gc_every: timedelta | None = timedelta(hours=6),
        gc_grace: timedelta = timedelta(hours=24),
        storage_every: timedelta | None = domain.STORAGE_PERIOD,
    ) -> None:
        """`gc_every`: how often orphan blobs older than `gc_grace` are swept (None: never).
        `storage_every`: the storage metering period, whole hours dividing a day (None: off)."""
        self._max_content_bytes = max_content_bytes
        self._chunking = ChunkPolicy() if chunking is None else chunking
        self._gc_every = gc_every
        self._gc_grace = gc_grace
        self._storage_every = storage_every
        self._pool: asyncpg.Pool | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.deps: Deps | None = None

    async def start(self, ctx: ServiceContext) -> Wiring:
        self._pool = await create_pool(ctx.postgres_url)
        catalog = Catalog(self._pool, GROUP)
        await catalog.setup()
        chunker = await asyncio.to_thread(TextChunker.minilm, self._chunking)
        blobs = open_blob_store(ctx.settings)
        self.deps = Deps(catalog, blobs, ctx.log, ctx.codec, chunker, self._max_content_bytes)
        if self._gc_every is not None and isinstance(blobs, DirectoryBlobStore):
            sweep = self._sweep(catalog, blobs, self._gc_every)
            self._tasks.append(asyncio.create_task(sweep, name="ingest-gc"))
        if self._storage_every is not None:
            meter = StorageMeter(catalog, ctx.log, ctx.codec, self._storage_every)
            self._tasks.append(asyncio.create_task(meter.run(), name="ingest-storage-meter"))
        return Wiring(
            consumers=[
                ConsumerLoop(ctx.log, ctx.codec, GROUP, ["atoms"], catalog_handler(catalog))
            ],
            grpc=[
                GrpcRegistration(
                    IngestApi(self.deps), ingest_pb2_grpc.add_IngestServicer_to_server, GRPC_SERVICE
                )
            ],
        )

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        self.deps = None

    async def _sweep(self, catalog: Catalog, blobs: DirectoryBlobStore, every: timedelta) -> None:
        while True:
            await asyncio.sleep(every.total_seconds())
            try:
                report = await garbage_collect_orphans(catalog, blobs, self._gc_grace)
            except Exception:
                log.exception("orphan blob sweep failed; retrying next period")
                continue
            log.info("orphan blobs swept", extra=vars(report))

"""Wiring: the catalog pool, the blob store and the tokenizer shared by the gRPC API and the
catalog projection, the periodic sweep of orphan blobs, and storage metering."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from datetime import timedelta

from hartonomous.blobs import open_blob_store
from hartonomous.blobs.embedded import DirectoryBlobStore
from hartonomous.postgres import create_pool
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.service import Service, ServiceContext, Wiring, in_background
from hartonomous.sealing import sealer_on
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc
from services.ingest.api import IngestApi
from services.ingest.chunking import TextChunker
from services.ingest.domain import content, storage
from services.ingest.domain.chunks import ChunkPolicy
from services.ingest.gc import garbage_collect_orphans
from services.ingest.handlers import Deps, catalog_projection
from services.ingest.metering import StorageMeter
from services.ingest.store import Catalog
from services.ingest.system_models import ingest_system_models
from services.ingest.tunables import CATALOG_GROUP

logger = logging.getLogger(__name__)

GRPC_SERVICE = ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name


class IngestService(Service):
    name = "ingest"

    def __init__(
        self,
        *,
        max_content_bytes: int = content.MAX_CONTENT_BYTES,
        chunking: ChunkPolicy | None = None,
        gc_every: timedelta | None = timedelta(hours=6),
        gc_grace: timedelta = timedelta(hours=24),
        storage_every: timedelta | None = storage.STORAGE_PERIOD,
        system_models: bool = False,
    ) -> None:
        """`gc_every`: how often orphan blobs older than `gc_grace` are swept (None: never).
        `storage_every`: the storage metering period, whole hours dividing a day (None: off).
        `system_models`: store the bundled models as atoms on start (the platform does)."""
        self._max_content_bytes = max_content_bytes
        self._chunking = ChunkPolicy() if chunking is None else chunking
        self._gc_every = gc_every
        self._gc_grace = gc_grace
        self._storage_every = storage_every
        self._system_models = system_models
        self.deps: Deps | None = None

    async def wire(self, ctx: ServiceContext, resources: AsyncExitStack) -> Wiring:
        pool = await create_pool(ctx.postgres_url)
        resources.push_async_callback(pool.close)
        catalog = Catalog(pool, CATALOG_GROUP)
        await catalog.setup()
        chunker = await asyncio.to_thread(TextChunker.minilm, self._chunking)
        blobs = open_blob_store(ctx.settings)
        publisher = ctx.publisher(self.name)
        sealer = await sealer_on(pool)
        self.deps = Deps(catalog, blobs, publisher, chunker, sealer, self._max_content_bytes)
        if self._gc_every is not None and isinstance(blobs, DirectoryBlobStore):
            in_background(resources, self._sweep(catalog, blobs, self._gc_every), "ingest-gc")
        if self._storage_every is not None:
            meter = StorageMeter(catalog, publisher, self._storage_every)
            in_background(resources, meter.run(), "ingest-storage-meter")
        if self._system_models:
            in_background(resources, self._store_system_models(self.deps), "ingest-models")
        return Wiring(
            consumers=[ctx.runner(catalog_projection(catalog))],
            grpc=[
                GrpcRegistration(
                    IngestApi(self.deps), ingest_pb2_grpc.add_IngestServicer_to_server, GRPC_SERVICE
                )
            ],
        )

    async def _store_system_models(self, deps: Deps) -> None:
        try:
            await ingest_system_models(deps)
        except Exception:  # the platform runs on; inference waits and says what it waits for
            logger.exception("storing the bundled models as atoms failed")

    async def _sweep(self, catalog: Catalog, blobs: DirectoryBlobStore, every: timedelta) -> None:
        while True:
            await asyncio.sleep(every.total_seconds())
            try:
                report = await garbage_collect_orphans(catalog, blobs, self._gc_grace)
            except Exception:
                logger.exception("orphan blob sweep failed; retrying next period")
                continue
            logger.info("orphan blobs swept", extra=vars(report))


service = IngestService(system_models=True)

"""Wiring: the Postgres join state, the vector store, the inference peer, and the consumer and
gRPC servicer built on them. A store that lost its points, or facts of another schema version,
are rebuilt from the log before the consumer starts."""

from __future__ import annotations

import logging

import asyncpg
import grpc

from hartonomous.blobs import open_blob_store
from hartonomous.postgres import create_pool
from hartonomous.runtime.consumer import ConsumerLoop
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.peers import peer_channel
from hartonomous.runtime.service import Service, ServiceContext, Wiring
from hartonomous.v1 import search_pb2, search_pb2_grpc
from services.search.api import SearchApi
from services.search.embedder import Embedder
from services.search.handlers import Deps, consumer_handler
from services.search.metering import SearchMeter
from services.search.queries import Searcher
from services.search.rebuild import rebuild
from services.search.store import JoinStore
from services.search.vectors import VectorStore, open_vector_store

log = logging.getLogger(__name__)

GROUP = "search"
TOPICS = ("atoms", "embeddings")
GRPC_SERVICE = search_pb2.DESCRIPTOR.services_by_name["Search"].full_name


class SearchService(Service):
    name = "search"

    def __init__(self) -> None:
        self._pool: asyncpg.Pool | None = None
        self._store: VectorStore | None = None
        self._channel: grpc.aio.Channel | None = None

    async def start(self, ctx: ServiceContext) -> Wiring:
        self._pool = await create_pool(ctx.postgres_url, max_size=4)
        joins = JoinStore(self._pool)
        stale_facts = await joins.setup()
        self._store = open_vector_store(ctx.settings)
        await self._store.ensure()
        self._channel = peer_channel(ctx.settings, "inference")
        searcher = Searcher(self._store, Embedder(self._channel), joins)
        deps = Deps(joins, self._store, open_blob_store(ctx.settings))
        lost_points = await joins.has_indexed_points() and await self._store.count() == 0
        if stale_facts or lost_points:
            why = "its facts were of another version" if stale_facts else "the store is empty"
            log.warning("rebuilding the search index from the log: %s", why)
            await rebuild(ctx.log, ctx.codec, deps, TOPICS)
        return Wiring(
            consumers=[ConsumerLoop(ctx.log, ctx.codec, GROUP, TOPICS, consumer_handler(deps))],
            grpc=[
                GrpcRegistration(
                    SearchApi(searcher, SearchMeter(ctx.log, ctx.codec)),
                    search_pb2_grpc.add_SearchServicer_to_server,
                    GRPC_SERVICE,
                )
            ],
        )

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._store is not None:
            await self._store.close()
            self._store = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

"""Wiring: the Postgres join state (store.py), the vector store, the inference peer, and the projection
and gRPC servicer built on them. A store that lost its points, or facts of another schema
version, are rebuilt from the log (a replay of the projection) before the consumer starts.

Two tunables are applied live (tunables.py): the query cache's size and the embedded store's
compaction threshold; each telemetry window reports the share of repeated queries, the cache's
hit rate and the dead slots waiting for a compaction."""

from __future__ import annotations

import logging
import re
from contextlib import AsyncExitStack

from hartonomous.blobs import open_blob_store
from hartonomous.postgres import create_pool
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.peers import peer_channel
from hartonomous.runtime.projection import replay
from hartonomous.runtime.service import Service, ServiceContext, Wiring
from hartonomous.sealing import sealer_on
from hartonomous.v1 import search_pb2, search_pb2_grpc
from services.search import tunables
from services.search.api import SearchApi
from services.search.embedder import Embedder
from services.search.handlers import Deps, search_projection
from services.search.metering import SearchMeter
from services.search.queries import Searcher
from services.search.query_cache import QueryCache, WindowShare
from services.search.store import SCHEMA, JoinStore
from services.search.tunables import GROUP
from services.search.vectors import open_vector_store

logger = logging.getLogger(__name__)

GRPC_SERVICE = search_pb2.DESCRIPTOR.services_by_name["Search"].full_name


class SearchService(Service):
    name = "search"

    async def wire(self, ctx: ServiceContext, resources: AsyncExitStack) -> Wiring:
        pool = await create_pool(ctx.postgres_url, max_size=4)
        resources.push_async_callback(pool.close)
        group, schema = projection_names(ctx.settings.search_replica)
        joins = JoinStore(pool, schema)
        stale_joins = await joins.setup()
        store = open_vector_store(ctx.settings)
        resources.push_async_callback(store.close)
        await store.ensure()
        config = ctx.config
        store.retune_compaction(int(config.value(tunables.COMPACTION_MIN_DEAD)))
        config.watch(tunables.COMPACTION_MIN_DEAD, lambda v: store.retune_compaction(int(v)))
        channel = peer_channel(ctx.settings, "inference")
        resources.push_async_callback(channel.close)
        cache = QueryCache(int(config.value(tunables.QUERY_CACHE_SIZE)))
        config.watch(tunables.QUERY_CACHE_SIZE, lambda v: cache.resize(int(v)))
        searcher = Searcher(store, Embedder(channel), joins, cache)
        repeats = searcher.repeats
        gauge = ctx.telemetry.gauge
        gauge("search_repeated_queries", WindowShare(lambda: (repeats.repeats, repeats.queries)))
        gauge("search_query_cache_hit_rate", WindowShare(lambda: (cache.hits, cache.lookups)))
        gauge("search_dead_slots", lambda: _level(store.dead_slots()))
        sealer = await sealer_on(pool)
        deps = Deps(joins, store, open_blob_store(ctx.settings), sealer)
        projection = search_projection(deps, group)
        lost_points = await joins.has_indexed_points() and await store.count() == 0
        if stale_joins or lost_points:
            why = "its join state was of another version" if stale_joins else "the store is empty"
            logger.warning("rebuilding the search index from the log: %s", why)
            await replay(ctx.event_log, ctx.codec, projection)
        meter = SearchMeter(ctx.publisher(self.name), sealer)
        return Wiring(
            consumers=[ctx.runner(projection)],
            grpc=[
                GrpcRegistration(
                    SearchApi(searcher, meter),
                    search_pb2_grpc.add_SearchServicer_to_server,
                    GRPC_SERVICE,
                )
            ],
        )


def _level(count: int | None) -> float | None:
    return None if count is None else float(count)


service = SearchService()


def projection_names(replica: str | None) -> tuple[str, str]:
    """The consumer group and join schema of this process's projection."""
    if replica is None:
        return GROUP, SCHEMA
    if not re.fullmatch(r"[a-z0-9_]{1,32}", replica):
        raise ValueError(
            f"HARTONOMOUS_SEARCH_REPLICA {replica!r}: 1-32 lowercase letters, digits or '_'"
        )
    return f"{GROUP}-{replica}", f"{SCHEMA}_{replica}"

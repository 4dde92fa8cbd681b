"""Wiring: the graph store from settings, the projection of every domain topic, and the gRPC
servicer reading the same store."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AsyncExitStack

from hartonomous.postgres import create_pool
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.service import Service, ServiceContext, Wiring
from hartonomous.sealing import sealer_on
from hartonomous.settings import Settings
from hartonomous.v1 import provenance_pb2, provenance_pb2_grpc
from services.provenance.api import ProvenanceApi
from services.provenance.graph import GraphStore, open_graph_store
from services.provenance.projector import Observer, graph_projection

GRPC_SERVICE = provenance_pb2.DESCRIPTOR.services_by_name["Provenance"].full_name


class ProvenanceService(Service):
    name = "provenance"

    def __init__(
        self,
        *,
        observer: Observer | None = None,
        graph: Callable[[Settings], GraphStore] = open_graph_store,
    ) -> None:
        """`observer` sees every batch once it is in the graph (benchmarks measure lag);
        `graph` makes the store from settings (benchmarks pick a Neo4j namespace)."""
        self._observer = observer
        self._graph = graph
        self._store: GraphStore | None = None

    @property
    def store(self) -> GraphStore:
        if self._store is None:
            raise RuntimeError("the provenance service is not started")
        return self._store

    async def wire(self, ctx: ServiceContext, resources: AsyncExitStack) -> Wiring:
        store = self._graph(ctx.settings)
        await store.open()
        resources.push_async_callback(store.close)
        self._store = store
        projection = graph_projection(store, observer=self._observer)
        pool = await create_pool(ctx.postgres_url, max_size=2)
        resources.push_async_callback(pool.close)
        api = ProvenanceApi(store, await sealer_on(pool))
        return Wiring(
            consumers=[ctx.runner(projection)],
            grpc=[
                GrpcRegistration(
                    api, provenance_pb2_grpc.add_ProvenanceServicer_to_server, GRPC_SERVICE
                )
            ],
        )


service = ProvenanceService()

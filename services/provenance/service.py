"""Wiring: the graph store from settings, the projector consuming every domain topic, and the
gRPC servicer reading the same store."""

from __future__ import annotations

from collections.abc import Callable

from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.service import Service, ServiceContext, Wiring
from hartonomous.settings import Settings
from hartonomous.v1 import provenance_pb2, provenance_pb2_grpc
from services.provenance.api import ProvenanceApi
from services.provenance.graph import GraphStore, open_graph_store
from services.provenance.projector import GraphProjector, Observer

GRPC_SERVICE = provenance_pb2.DESCRIPTOR.services_by_name["Provenance"].full_name


class ProvenanceService(Service):
    name = "provenance"

    def __init__(
        self,
        *,
        max_batch: int = 500,
        observer: Observer | None = None,
        graph: Callable[[Settings], GraphStore] = open_graph_store,
    ) -> None:
        """`observer` sees every batch once it is in the graph (benchmarks measure lag);
        `graph` makes the store from settings (benchmarks pick a Neo4j namespace)."""
        self._max_batch = max_batch
        self._observer = observer
        self._graph = graph
        self._store: GraphStore | None = None

    @property
    def store(self) -> GraphStore:
        if self._store is None:
            raise RuntimeError("the provenance service is not started")
        return self._store

    async def start(self, ctx: ServiceContext) -> Wiring:
        store = self._graph(ctx.settings)
        await store.open()
        self._store = store
        projector = GraphProjector(
            ctx.log, ctx.codec, store, max_batch=self._max_batch, observer=self._observer
        )
        return Wiring(
            consumers=[projector],
            grpc=[
                GrpcRegistration(
                    ProvenanceApi(store),
                    provenance_pb2_grpc.add_ProvenanceServicer_to_server,
                    GRPC_SERVICE,
                )
            ],
        )

    async def stop(self) -> None:
        if self._store is not None:
            await self._store.close()
            self._store = None

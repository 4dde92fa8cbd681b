"""Wiring: the control store, its projection of `control`, and the gRPC servicer."""

from __future__ import annotations

from contextlib import AsyncExitStack

from hartonomous.postgres import create_pool
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.service import Service, ServiceContext, Wiring
from hartonomous.tunables import catalog
from hartonomous.v1 import control_pb2, control_pb2_grpc
from services.control.api import ControlApi
from services.control.handlers import Deps, control_projection
from services.control.store import ControlStore

GRPC_SERVICE = control_pb2.DESCRIPTOR.services_by_name["Control"].full_name


class ControlService(Service):
    name = "control"

    async def wire(self, ctx: ServiceContext, resources: AsyncExitStack) -> Wiring:
        pool = await create_pool(ctx.postgres_url, max_size=2)
        resources.push_async_callback(pool.close)
        store = ControlStore(pool)
        await store.setup()
        deps = Deps(store, ctx.publisher(self.name), catalog())
        return Wiring(
            consumers=[ctx.runner(control_projection(store))],
            grpc=[
                GrpcRegistration(
                    ControlApi(deps), control_pb2_grpc.add_ControlServicer_to_server, GRPC_SERVICE
                )
            ],
        )


service = ControlService()

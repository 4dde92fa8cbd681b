"""Wiring of the decide stage, the loop's read model (group `ooda-cycles`) and its API."""

from __future__ import annotations

from contextlib import AsyncExitStack

from hartonomous.events.payloads import EVENT_PAYLOADS
from hartonomous.postgres import create_pool
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.projection import Projection
from hartonomous.runtime.service import ServiceContext, Wiring
from hartonomous.tunables import catalog
from hartonomous.v1 import ooda_pb2, ooda_pb2_grpc
from services.ooda.decide.api import OodaApi
from services.ooda.domain.decide import Decide
from services.ooda.domain.stage import Stage
from services.ooda.stages import StageRunner, StageService
from services.ooda.store import OodaStore

GRPC_SERVICE = ooda_pb2.DESCRIPTOR.services_by_name["Ooda"].full_name
READ_MODEL_TOPICS = (
    "ooda.observations",
    "ooda.hypotheses",
    "ooda.decisions",
    "ooda.actions",
    "ooda.outcomes",
    "control",
)


class DecideService(StageService):
    name = "ooda-decide"
    topics = ("ooda.decisions", "control", "ooda.hypotheses", "ooda.actions", "ooda.outcomes")
    own_topics = ("ooda.decisions",)

    def stage(self, ctx: ServiceContext) -> Stage:
        return Decide(catalog())

    async def add_to(
        self, wiring: Wiring, ctx: ServiceContext, runner: StageRunner, resources: AsyncExitStack
    ) -> None:
        pool = await create_pool(ctx.postgres_url, max_size=2)
        resources.push_async_callback(pool.close)
        store = OodaStore(pool)
        await store.setup()
        read_model = Projection.one_at_a_time(
            "ooda-cycles",
            READ_MODEL_TOPICS,
            {cls: store.record for cls in EVENT_PAYLOADS.values()},
            store,
        )
        wiring.consumers.append(ctx.runner(read_model))
        api = OodaApi(runner, store)
        wiring.grpc.append(
            GrpcRegistration(api, ooda_pb2_grpc.add_OodaServicer_to_server, GRPC_SERVICE)
        )


service = DecideService()

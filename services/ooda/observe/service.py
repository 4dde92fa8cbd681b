"""Wiring of the observe stage."""

from __future__ import annotations

from hartonomous.runtime.service import ServiceContext
from services.ooda.domain.observe import Observe
from services.ooda.domain.stage import Stage
from services.ooda.stages import StageService


class ObserveService(StageService):
    name = "ooda-observe"
    topics = ("ooda.observations", "control", "telemetry")
    own_topics = ("ooda.observations",)
    telemetry_horizon_s = 6 * 3600.0  # baselines are the last 180 windows: at most hours

    def stage(self, ctx: ServiceContext) -> Stage:
        return Observe()


service = ObserveService()

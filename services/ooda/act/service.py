"""Wiring of the act stage."""

from __future__ import annotations

from hartonomous.runtime.service import ServiceContext
from hartonomous.tunables import catalog
from services.ooda.domain.act import Act
from services.ooda.domain.stage import Stage
from services.ooda.stages import StageService


class ActService(StageService):
    name = "ooda-act"
    topics = ("ooda.actions", "control", "ooda.decisions", "ooda.outcomes", "telemetry")
    own_topics = ("ooda.actions", "control")
    telemetry_horizon_s = 3600.0  # read-backs and liveness: the last minutes

    def stage(self, ctx: ServiceContext) -> Stage:
        return Act(catalog())


service = ActService()

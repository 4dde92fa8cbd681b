"""Wiring of the observe stage."""

from __future__ import annotations

from hartonomous.runtime.service import ServiceContext
from services.ooda.domain.detect import Tuning
from services.ooda.domain.observe import Observe
from services.ooda.domain.stage import Stage
from services.ooda.stages import StageService


class ObserveService(StageService):
    name = "ooda-observe"
    topics = ("ooda.observations", "telemetry")
    own_topics = ("ooda.observations",)
    telemetry_horizon_s = 6 * 3600.0  # baselines are the last 180 windows: at most hours

    def __init__(self, tuning: Tuning | None = None) -> None:
        super().__init__()
        self.tuning = tuning  # the detector's statistics; None: the defaults chosen for 5 s windows

    def stage(self, ctx: ServiceContext) -> Stage:
        return Observe(self.tuning)


service = ObserveService()

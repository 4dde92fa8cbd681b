"""Wiring of the learn stage."""

from __future__ import annotations

from hartonomous.runtime.service import ServiceContext
from services.ooda.domain.learn import Learn
from services.ooda.domain.stage import Stage
from services.ooda.stages import StageService, playbooks


class LearnService(StageService):
    name = "ooda-learn"
    topics = (
        "ooda.outcomes",
        "ooda.observations",
        "ooda.hypotheses",
        "ooda.decisions",
        "ooda.actions",
        "telemetry",
    )
    own_topics = ("ooda.outcomes",)
    telemetry_horizon_s = 3 * 3600.0  # it judges with the last KEEP_S (2 h)

    def stage(self, ctx: ServiceContext) -> Stage:
        return Learn(playbooks(ctx.settings))


service = LearnService()

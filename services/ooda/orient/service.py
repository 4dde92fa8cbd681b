"""Wiring of the orient stage."""

from __future__ import annotations

from hartonomous.runtime.service import ServiceContext
from hartonomous.tunables import catalog
from services.ooda.domain.orient import Orient
from services.ooda.domain.stage import Stage
from services.ooda.stages import StageService, playbooks


class OrientService(StageService):
    name = "ooda-orient"
    topics = ("ooda.hypotheses", "control", "ooda.outcomes", "ooda.observations")
    own_topics = ("ooda.hypotheses",)

    def stage(self, ctx: ServiceContext) -> Stage:
        return Orient(catalog(), playbooks(ctx.settings))


service = OrientService()

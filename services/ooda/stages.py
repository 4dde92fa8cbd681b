"""Running one stage as a service: its consumer group follows the stage's topics through the
kernel's projection runner, a clock ticks it every second, and what it emits is published.

A stage's state lives in memory and is rebuilt at start from the log, as DESIGN.md §2 asks of
every projection: first the ids of the events the stage already published are recalled, then
its topics are replayed through the same handler, so a restarted stage resumes what a crash cut
short (publishing only what never reached the log) and never repeats what is done. Telemetry
is replayed only as far back as the stage looks (`telemetry_horizon_s`): it grows with every process and
every window, and no stage judges with windows older than hours. The stages run one replica
each (their state is the whole of their topics, not a partition of it).

What a stage emits waits in an outbox until the log has it: a failed append is retried before
anything else, in the same order, and the stage's state (which already counts those events as
done) stays right."""

from __future__ import annotations

import asyncio
import importlib
import logging
from collections.abc import Sequence
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import ClassVar

from hartonomous.events import Event
from hartonomous.events.payloads import EVENT_PAYLOADS, Payload
from hartonomous.runtime.projection import Projection, replay
from hartonomous.runtime.publisher import Publisher
from hartonomous.runtime.service import Service, ServiceContext, Wiring, in_background
from hartonomous.settings import Settings
from services.ooda.domain.playbooks import PLAYBOOKS, Playbook
from services.ooda.domain.stage import Out, Stage

logger = logging.getLogger(__name__)

TICK_S = 1.0
PLATFORM = "platform"  # the tenant of the loop's events: they are about the platform


class StageRunner:
    """One stage, its outbox and its clock."""

    def __init__(self, stage: Stage, publisher: Publisher) -> None:
        self.stage = stage
        self._publisher = publisher
        self._outbox: list[Out] = []
        self._publishing = asyncio.Lock()

    async def handle(self, _: StageRunner, event: Event[Payload]) -> None:
        envelope = event.envelope
        await self.emit(self.stage.receive(event.payload, envelope.event_id, envelope.occurred_at))

    async def emit(self, outs: list[Out]) -> None:
        """Publish `outs` (and anything an earlier failure left in the outbox), in order; the
        events one input led to are appended atomically (an action and its ConfigChanged)."""
        async with self._publishing:
            self._outbox.extend(outs)
            if not self._outbox:
                return
            events = [
                self._publisher.new(
                    out.payload, tenant_id=PLATFORM, correlation_id=out.cycle, event_id=out.event_id
                )
                for out in self._outbox
            ]
            await self._publisher.publish(*events)
            self._outbox.clear()

    async def tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self.emit(self.stage.tick(datetime.now(UTC)))
            except Exception:  # the outbox keeps what failed; the next tick retries it
                logger.exception("the %s stage could not publish", type(self.stage).__name__)


class StageService(Service):
    """A stage as a service: `topics` it consumes (its own among them), `own_topics` it
    publishes to."""

    topics: ClassVar[Sequence[str]]
    own_topics: ClassVar[Sequence[str]]
    # How many seconds of telemetry a rebuild replays (None: all of it).
    telemetry_horizon_s: ClassVar[float | None] = None

    def stage(self, ctx: ServiceContext) -> Stage:
        raise NotImplementedError

    async def wire(self, ctx: ServiceContext, resources: AsyncExitStack) -> Wiring:
        runner = StageRunner(self.stage(ctx), ctx.publisher(self.name))
        projection: Projection[StageRunner] = Projection.one_at_a_time(
            self.name, self.topics, {cls: runner.handle for cls in EVENT_PAYLOADS.values()}, runner
        )
        await self._rebuild(ctx, runner, projection)
        in_background(resources, runner.tick_forever(), f"{self.name}-clock")
        wiring = Wiring(consumers=[ctx.runner(projection)])
        await self.add_to(wiring, ctx, runner, resources)
        return wiring

    async def add_to(
        self, wiring: Wiring, ctx: ServiceContext, runner: StageRunner, resources: AsyncExitStack
    ) -> None:
        """Anything more the service runs beside its stage (decide: the cycles' read model
        and the API)."""

    async def _rebuild(
        self, ctx: ServiceContext, runner: StageRunner, projection: Projection[StageRunner]
    ) -> None:
        for topic in self.own_topics:
            async for record in ctx.event_log.replay(topic, from_offset=0):
                event_id = record.headers.get("event_id")
                if event_id is not None:
                    runner.stage.recall([event_id])
        now = datetime.now(UTC)
        await runner.emit(runner.stage.tick(now))  # the stage knows the time before the past
        horizon = self.telemetry_horizon_s
        since = {} if horizon is None else {"telemetry": now - timedelta(seconds=horizon)}
        await replay(ctx.event_log, ctx.codec, projection, progress_every=30.0, since=since)


def playbooks(settings: Settings) -> tuple[Playbook, ...]:
    """The built-in playbooks, and those `HARTONOMOUS_OODA_PLAYBOOKS` names (`module:attribute`,
    a sequence of Playbook) after them."""
    if not settings.ooda_playbooks:
        return PLAYBOOKS
    module, _, attribute = settings.ooda_playbooks.partition(":")
    extra = getattr(importlib.import_module(module), attribute)
    if not all(isinstance(p, Playbook) for p in extra):
        raise TypeError(f"{settings.ooda_playbooks} is not a sequence of Playbook")
    return (*PLAYBOOKS, *extra)

"""What a service is to the runtime, and how services are discovered.

Services never import each other: each registers one object under the
`hartonomous.services` entry point group, and the composition root loads them by name."""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable, Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

from hartonomous.entrypoints import load_entry_points
from hartonomous.eventlog.port import EventLog
from hartonomous.events import AvroCodec
from hartonomous.runtime.control import follower, new_instance_id
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.projection import Projection, ProjectionRunner, replay
from hartonomous.runtime.publisher import Publisher
from hartonomous.runtime.windows import WindowRecorder
from hartonomous.settings import Settings
from hartonomous.tunables import LiveConfig, catalog

ENTRY_POINT_GROUP = "hartonomous.services"


@dataclass
class ServiceContext:
    settings: Settings
    event_log: EventLog
    codec: AvroCodec
    postgres_url: str
    config: LiveConfig = field(default_factory=lambda: LiveConfig(catalog()))
    instance: str = field(default_factory=new_instance_id)
    role: str = "platform"
    """What the process runs, as its telemetry names it: one service, or the whole platform."""
    settle: Callable[[], None] = lambda: None
    """For a service that has just made what lives as long as the process (a model's compiled
    shapes): the platform's own process (`host.run`) then moves the heap out of the cyclic
    collector's sight (`settle_heap`); elsewhere (a test's process) nothing happens."""
    telemetry: WindowRecorder = field(init=False)

    def __post_init__(self) -> None:
        self.telemetry = WindowRecorder(self.role, self.instance)

    @classmethod
    async def following_control(
        cls,
        settings: Settings,
        event_log: EventLog,
        codec: AvroCodec,
        postgres_url: str,
        services: Sequence[str],
    ) -> ServiceContext:
        """A context whose config holds the tunables of `services` (and the kernel's) at the
        values the control topic gives them now: what a process opens its services with."""
        tunables = catalog()
        held = [k for k, t in tunables.items() if t.owner in ("*", *services)]
        role = services[0] if len(services) == 1 else "platform"
        config = LiveConfig(tunables, held)
        ctx = cls(settings, event_log, codec, postgres_url, config, new_instance_id(), role)
        await replay(event_log, codec, ctx.control_projection(), progress_every=60.0)
        return ctx

    def control_projection(self) -> Projection[LiveConfig]:
        return follower(self.config, self.instance)

    def publisher(self, produced_by: str) -> Publisher:
        return Publisher(self.event_log, self.codec, produced_by)

    def runner(self, projection: Projection[Any]) -> ProjectionRunner[Any]:
        """The projection's runner; a projection with a `<group>.consumer.max_batch` tunable
        polls as many records as it says, and one with `<group>.consumer.linger_ms` lets a
        short batch fill that long, both retuned live."""
        runner = ProjectionRunner(self.event_log, self.codec, projection)
        self.telemetry.gauge("consumer_lag", lambda: runner.lag, group=projection.group)
        self.telemetry.gauge("consumer_delay_ms", WindowMeanDelay(runner), group=projection.group)
        declared = {s.tunable.key for s in self.config.settings()}
        batch, linger = (
            f"{projection.group}.consumer.{name}" for name in ("max_batch", "linger_ms")
        )
        if batch in declared:
            runner.max_batch = int(self.config.watch(batch, runner.retune_batch))
        if linger in declared:
            runner.retune_linger(self.config.watch(linger, runner.retune_linger))
        return runner


@dataclass
class Wiring:
    """What a started service hands the runtime to run."""

    consumers: list[ProjectionRunner[Any]] = field(default_factory=list)
    grpc: list[GrpcRegistration] = field(default_factory=list)


class Service(abc.ABC):
    name: str
    _resources: AsyncExitStack | None = None

    @abc.abstractmethod
    async def wire(self, ctx: ServiceContext, resources: AsyncExitStack) -> Wiring:
        """Open the service's stores and return its consumers and gRPC servicers. Everything
        opened is registered with `resources`, which `stop` closes in reverse order."""

    async def start(self, ctx: ServiceContext) -> Wiring:
        resources = AsyncExitStack()
        try:
            wiring = await self.wire(ctx, resources)
        except BaseException:
            await resources.aclose()
            raise
        self._resources = resources
        return wiring

    async def stop(self) -> None:
        """Release what `start` opened (after its consumers drained)."""
        resources, self._resources = self._resources, None
        if resources is not None:
            await resources.aclose()


def in_background(
    resources: AsyncExitStack, work: Coroutine[Any, Any, None], name: str
) -> asyncio.Task[None]:
    """Run `work` as a task that is cancelled (and awaited) when `resources` close."""
    task = asyncio.create_task(work, name=name)

    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    resources.push_async_callback(cancel)
    return task


def discover() -> dict[str, Service]:
    found: dict[str, Service] = load_entry_points(ENTRY_POINT_GROUP, Service)
    return found


class WindowMeanDelay:
    """A telemetry gauge: milliseconds from a batch's newest record reaching the log to the
    batch applied, averaged over the batches since the last reading; None when none was."""

    def __init__(self, runner: ProjectionRunner[Any]) -> None:
        self._runner = runner
        self._seen = (0, 0.0)  # (batches, delay_s) at the last reading

    def __call__(self) -> float | None:
        batches = self._runner.batches - self._seen[0]
        delay_s = self._runner.delay_s - self._seen[1]
        self._seen = (self._runner.batches, self._runner.delay_s)
        return 1000.0 * delay_s / batches if batches else None

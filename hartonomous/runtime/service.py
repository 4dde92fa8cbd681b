"""What a service is to the runtime, and how services are discovered.

Services never import each other: each registers one object under the
`hartonomous.services` entry point group, and the composition root loads them by name."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from hartonomous.eventlog.port import EventLog
from hartonomous.events import AvroCodec
from hartonomous.runtime.consumer import ConsumerLoop
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.settings import Settings

ENTRY_POINT_GROUP = "hartonomous.services"


@dataclass
class ServiceContext:
    settings: Settings
    log: EventLog
    codec: AvroCodec
    postgres_url: str


@dataclass
class Wiring:
    """What a started service hands the runtime to run."""

    consumers: list[ConsumerLoop] = field(default_factory=list)
    grpc: list[GrpcRegistration] = field(default_factory=list)


class Service(abc.ABC):
    name: str

    @abc.abstractmethod
    async def start(self, ctx: ServiceContext) -> Wiring:
        """Open the service's stores and return its consumers and gRPC servicers."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Release what `start` opened (after its consumers drained)."""


def discover() -> dict[str, Service]:
    found: dict[str, Service] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        service = ep.load()
        if not isinstance(service, Service):
            raise TypeError(f"entry point {ep.name!r} is not a hartonomous Service: {service!r}")
        found[ep.name] = service
    return dict(sorted(found.items()))

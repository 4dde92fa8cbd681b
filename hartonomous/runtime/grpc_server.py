"""gRPC server bootstrap: one aio server per process with the standard health service and
reflection, so `grpcurl` and Kubernetes probes work against every service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection


@dataclass(frozen=True)
class GrpcRegistration:
    """What a service contributes: its servicer, the generated `add_*_to_server`, its full name."""

    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    service_name: str


class GrpcHost:
    def __init__(
        self, host: str, port: int, interceptors: Sequence[grpc.aio.ServerInterceptor] = ()
    ) -> None:
        self._address = f"{host}:{port}"
        self.server = grpc.aio.server(
            interceptors=list(interceptors), options=[("grpc.so_reuseport", 0)]
        )
        self.health = health.aio.HealthServicer()
        self.port = 0

    async def start(self, registrations: Sequence[GrpcRegistration]) -> int:
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        names = [health.SERVICE_NAME, reflection.SERVICE_NAME]
        for reg in registrations:
            reg.add_to_server(reg.servicer, self.server)
            names.append(reg.service_name)
        reflection.enable_server_reflection(names, self.server)
        self.port = self.server.add_insecure_port(self._address)
        if self.port == 0:
            raise OSError(f"cannot bind the gRPC server to {self._address}")
        await self.server.start()
        for reg in registrations:
            await self.health.set(reg.service_name, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


def metadata_value(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str | None:
    """The caller's invocation metadata `key` (e.g. its W3C `traceparent`), if it sent one."""
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return None

"""gRPC server bootstrap: one aio server per process with the standard health service and
reflection, so `grpcurl` and Kubernetes probes work against every service."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from hartonomous.runtime import local_calls
from hartonomous.runtime.peers import own_address


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
        self._host = host
        self._address = f"{host}:{port}"
        self._interceptors = list(interceptors)
        self.server = grpc.aio.server(
            interceptors=self._interceptors, options=[("grpc.so_reuseport", 0)]
        )
        self.health = health.aio.HealthServicer()
        self.port = 0

    async def start(self, registrations: Sequence[GrpcRegistration]) -> int:
        recorded = _Recorder(self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, recorded)
        names = [health.SERVICE_NAME, reflection.SERVICE_NAME]
        for reg in registrations:
            reg.add_to_server(reg.servicer, recorded)
            names.append(reg.service_name)
        reflection.enable_server_reflection(names, self.server)
        self.port = self.server.add_insecure_port(self._address)
        if self.port == 0:
            raise OSError(f"cannot bind the gRPC server to {self._address}")
        await self.server.start()
        local_calls.host(own_address(self._host, self.port), recorded.handlers, self._interceptors)
        for reg in registrations:
            await self.health.set(reg.service_name, health_pb2.HealthCheckResponse.SERVING)
        await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        return self.port

    async def stop(self, grace: float = 5.0) -> None:
        local_calls.unhost(own_address(self._host, self.port))
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace)


class _Recorder:
    """The server as the generated `add_*_to_server` sees it: each service's method handlers
    are kept (for local_calls) as they are added."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server
        self.handlers: dict[str, grpc.RpcMethodHandler] = {}

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler]
    ) -> None:
        self._server.add_registered_method_handlers(service, handlers)
        for method, handler in handlers.items():
            self.handlers[f"/{service}/{method}"] = handler


def metadata_value(context: grpc.aio.ServicerContext[Any, Any], key: str) -> str | None:
    """The caller's invocation metadata `key` (e.g. its W3C `traceparent`), if it sent one."""
    for name, value in context.invocation_metadata() or ():
        if name == key and isinstance(value, str):
            return value
    return None

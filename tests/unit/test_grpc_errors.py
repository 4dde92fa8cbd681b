"""The kernel's error -> gRPC status mapping, through a real in-process gRPC server."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hartonomous.runtime.grpc_errors import GrpcErrors


class Refused(ValueError):
    pass


class Secret(RuntimeError):
    pass


ERRORS = GrpcErrors(
    "demo",
    {Refused: grpc.StatusCode.INVALID_ARGUMENT, Secret: grpc.StatusCode.UNAVAILABLE},
    withheld={Secret: "the store is unavailable"},
)


class Failing(health_pb2_grpc.HealthServicer):
    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        async with ERRORS.scope(context, "Check"):
            raise {
                "refused": Refused("k must be positive"),
                "secret": Secret("password=hunter2"),
                "database": ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
            }.get(request.service, KeyError("boom"))


@pytest.mark.parametrize(
    ("case", "code", "details"),
    [
        ("refused", grpc.StatusCode.INVALID_ARGUMENT, "k must be positive"),
        ("secret", grpc.StatusCode.UNAVAILABLE, "the store is unavailable"),
        # Every service's shared rule: its database down is a retry, not a bug.
        (
            "database",
            grpc.StatusCode.UNAVAILABLE,
            "the demo service's log or database is unreachable; retry shortly",
        ),
        ("other", grpc.StatusCode.INTERNAL, "Check failed; see the demo service log"),
    ],
)
async def test_errors_become_typed_statuses_without_leaking_details(
    case: str, code: grpc.StatusCode, details: str
) -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(Failing(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.Check(health_pb2.HealthCheckRequest(service=case), timeout=5)
    finally:
        await server.stop(None)
    assert failure.value.code() == code
    assert failure.value.details() == details

"""The kernel's error -> gRPC status mapping, through a real in-process gRPC server."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hartonomous.runtime.grpc_errors import GrpcErrors
from hartonomous.runtime.peers import peer_channel
from hartonomous.settings import Settings


class Refused(ValueError):
    pass


class Secret(RuntimeError):
    pass


class Loading(RuntimeError):
    pass


ERRORS = GrpcErrors(
    "demo",
    {
        Refused: grpc.StatusCode.INVALID_ARGUMENT,
        Secret: grpc.StatusCode.UNAVAILABLE,
        Loading: grpc.StatusCode.UNAVAILABLE,
    },
    withheld={Secret: "the store is unavailable"},
    retry_elsewhere=(Loading,),
)


class Failing(health_pb2_grpc.HealthServicer):
    def __init__(self) -> None:
        self.calls = 0

    async def Check(self, request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        self.calls += 1
        async with ERRORS.scope(context, "Check"):
            raise {
                "refused": Refused("k must be positive"),
                "secret": Secret("password=hunter2"),
                "loading": Loading("the model is still loading"),
                "database": ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
            }.get(request.service, KeyError("boom"))


@pytest.mark.parametrize(
    ("case", "code", "details"),
    [
        ("refused", grpc.StatusCode.INVALID_ARGUMENT, "k must be positive"),
        ("secret", grpc.StatusCode.UNAVAILABLE, "the store is unavailable"),
        ("loading", grpc.StatusCode.UNAVAILABLE, "the model is still loading"),
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
    """Through the channel every service uses for its peers: it retries UNAVAILABLE (a replica
    that is gone), but not an UNAVAILABLE the service answered itself (its store is down: a
    retry on the spot only spends the caller's deadline), unless the cause is the replica's own
    (retry_elsewhere: another replica may answer)."""
    server, servicer = grpc.aio.server(), Failing()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with peer_channel(Settings(grpc_host="127.0.0.1", grpc_port=port), "demo") as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as failure:
                await stub.Check(health_pb2.HealthCheckRequest(service=case), timeout=5)
    finally:
        await server.stop(None)
    assert failure.value.code() == code
    assert failure.value.details() == details
    assert servicer.calls == (5 if case == "loading" else 1)  # the policy's maxAttempts

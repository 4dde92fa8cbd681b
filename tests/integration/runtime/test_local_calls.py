"""A unary call to a service this process serves runs in process (local_calls) and behaves as
the same call over the network does: the reply, an abort's status and trailing metadata, an
uncaught error, a deadline, UNAVAILABLE retried unless pushed back, the server's interceptors,
and a context of its own. Each case runs both ways against one real gRPC server."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from grpc_health.v1.health_pb2 import HealthCheckRequest, HealthCheckResponse

from hartonomous.runtime.grpc_errors import NO_RETRY
from hartonomous.runtime.grpc_server import GrpcHost, GrpcRegistration
from hartonomous.runtime.local_calls import LocalFirstChannel
from hartonomous.runtime.peers import network_channel, own_address

SERVICE = "test.Probe"
METHOD = f"/{SERVICE}/Call"
SERVING = HealthCheckResponse.SERVING
CALLER_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("caller", default="unset")


@dataclass
class Probe:
    """Answers by the request's `service` field: what to do, and how often it has been asked."""

    calls: dict[str, int] = field(default_factory=dict)
    peers: list[str] = field(default_factory=list)
    seen_caller_var: list[str] = field(default_factory=list)

    async def call(self, request: HealthCheckRequest, context: Any) -> HealthCheckResponse:
        what = request.service
        self.calls[what] = self.calls.get(what, 0) + 1
        self.peers.append(context.peer())
        self.seen_caller_var.append(CALLER_VAR.get())
        CALLER_VAR.set("set by the handler")
        if what == "abort":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "no", (("why", "because"),))
        if what == "status":
            context.set_code(grpc.StatusCode.NOT_FOUND)
            context.set_details("nothing here")
            return HealthCheckResponse()
        if what == "raise":
            raise RuntimeError("a bug")
        if what == "slow":
            await asyncio.sleep(5)
        if what == "flaky" and self.calls[what] < 3:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "loading")
        if what == "refused":
            await context.abort(grpc.StatusCode.UNAVAILABLE, "store down", NO_RETRY)
        return HealthCheckResponse(status=SERVING)


@dataclass
class Observed(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # untyped base
    """Counts the calls that pass the server's interceptors, with their status when done."""

    codes: list[grpc.StatusCode | None] = field(default_factory=list)

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        if handler is None or details.method != METHOD:
            return handler
        behavior = handler.unary_unary

        async def call(request: Any, context: Any) -> Any:
            context.add_done_callback(lambda ctx: self.codes.append(ctx.code()))
            return await behavior(request, context)

        return grpc.unary_unary_rpc_method_handler(
            call,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )


def _add_probe(probe: Probe, server: Any) -> None:
    handler = grpc.unary_unary_rpc_method_handler(
        probe.call,
        request_deserializer=HealthCheckRequest.FromString,
        response_serializer=HealthCheckResponse.SerializeToString,
    )
    server.add_registered_method_handlers(SERVICE, {"Call": handler})


@dataclass
class Served:
    probe: Probe
    observed: Observed
    local: grpc.aio.Channel
    remote: grpc.aio.Channel
    address: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    probe, observed = Probe(), Observed()
    host = GrpcHost("127.0.0.1", 0, interceptors=[observed])
    port = await host.start([GrpcRegistration(probe, _add_probe, SERVICE)])
    address = own_address("127.0.0.1", port)
    remote = network_channel(address)
    local = LocalFirstChannel(network_channel(address), address)
    try:
        yield Served(probe, observed, local, remote, address)
    finally:
        await local.close()
        await remote.close()
        await host.stop(grace=0)


async def _call(channel: grpc.aio.Channel, what: str, timeout: float = 5) -> Any:
    call = channel.unary_unary(
        METHOD,
        request_serializer=HealthCheckRequest.SerializeToString,
        response_deserializer=HealthCheckResponse.FromString,
    )
    return await call(HealthCheckRequest(service=what), timeout=timeout)


async def _outcome(channel: grpc.aio.Channel, what: str, timeout: float = 5) -> tuple[Any, ...]:
    try:
        reply = await _call(channel, what, timeout)
    except grpc.aio.AioRpcError as exc:
        trailing = tuple((k, v) for k, v in exc.trailing_metadata() if k == "why")
        details = exc.details() or ""
        return exc.code(), details.split(":")[0], trailing
    return grpc.StatusCode.OK, reply.status


@pytest.mark.parametrize("what", ["ok", "abort", "status", "raise", "slow", "flaky", "refused"])
async def test_a_local_call_ends_as_the_same_call_over_the_network(
    served: Served, what: str
) -> None:
    timeout = 0.3 if what == "slow" else 5
    over_network = await _outcome(served.remote, what, timeout)
    await asyncio.sleep(0.2)  # a server learns of a caller's deadline a moment later
    network_calls, network_codes = served.probe.calls.get(what, 0), served.observed.codes[:]
    served.probe.calls.clear()
    served.observed.codes.clear()
    in_process = await _outcome(served.local, what, timeout)
    assert in_process == over_network
    assert served.probe.calls.get(what, 0) == network_calls  # as many attempts
    assert served.probe.peers[-1] == "local" and served.probe.peers[0].startswith("ipv4:")
    if what == "raise":  # grpc's server tells its interceptors nothing of an uncaught error
        assert network_codes == [None] and served.observed.codes == [grpc.StatusCode.UNKNOWN]
    else:
        assert served.observed.codes == network_codes


async def test_the_statuses_are_what_a_caller_expects(served: Served) -> None:
    assert await _outcome(served.local, "ok") == (grpc.StatusCode.OK, SERVING)
    assert await _outcome(served.local, "abort") == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "no",
        (("why", "because"),),
    )
    assert (await _outcome(served.local, "slow", 0.2))[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    assert await _outcome(served.local, "flaky") == (grpc.StatusCode.OK, SERVING)
    assert served.probe.calls["flaky"] == 3  # two UNAVAILABLE, retried; the third answers
    assert await _outcome(served.local, "refused") == (
        grpc.StatusCode.UNAVAILABLE,
        "store down",
        (),
    )
    assert served.probe.calls["refused"] == 1  # pushed back: not retried


async def test_the_handler_runs_in_a_context_of_its_own(served: Served) -> None:
    CALLER_VAR.set("set by the caller")
    await _call(served.local, "ok")
    assert served.probe.seen_caller_var == ["unset"]
    assert CALLER_VAR.get() == "set by the caller"


async def test_a_cancelled_caller_cancels_the_handler(served: Served) -> None:
    call = asyncio.create_task(_call(served.local, "slow"))
    await asyncio.sleep(0.2)  # the handler is asleep by then
    assert served.probe.calls == {"slow": 1}
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    await asyncio.sleep(0)
    assert len(served.observed.codes) == 1  # the interceptor saw it end


async def test_once_its_server_stops_a_service_is_called_over_the_network() -> None:
    probe = Probe()
    host = GrpcHost("127.0.0.1", 0)
    port = await host.start([GrpcRegistration(probe, _add_probe, SERVICE)])
    address = own_address("127.0.0.1", port)
    async with LocalFirstChannel(network_channel(address), address) as channel:
        assert await _outcome(channel, "ok") == (grpc.StatusCode.OK, SERVING)
        await host.stop(grace=0)
        assert (await _outcome(channel, "ok", 2))[0] == grpc.StatusCode.UNAVAILABLE
    assert probe.peers == ["local"]  # the second call found no server, not the old handler


async def test_a_caller_on_another_event_loop_goes_over_the_network(served: Served) -> None:
    """The handlers' pools and locks belong to the server's loop: only its own callers run
    them in process."""
    address = served.address

    async def from_elsewhere() -> tuple[Any, ...]:
        async with LocalFirstChannel(network_channel(address), address) as channel:
            return await _outcome(channel, "ok")

    outcome = await asyncio.to_thread(asyncio.run, from_elsewhere())
    assert outcome == (grpc.StatusCode.OK, SERVING)
    assert served.probe.peers[-1].startswith("ipv4:")

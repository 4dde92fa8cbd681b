"""Unary gRPC calls to a service this same process serves, without the network.

On `hartonomous up` every service shares one gRPC server, and the gateway, search and inference
call each other through it: over loopback, each call costs both halves of gRPC's transport
(~0.25-0.5 ms of CPU, measured) and a few turns of the one event loop the requests share. When
the callee's handlers are hosted here (GrpcHost.start registers them under the address peers
reach it by), a unary call runs the handler directly, keeping what the wire guarantees: the
messages are serialized and parsed as on the wire (the callee gets its own copy), the server's
interceptors run (telemetry, the server span from `traceparent`), the handler runs in a task
of its own with a fresh context, deadlines end it with DEADLINE_EXCEEDED, an abort or an
uncaught error reaches the caller as the same `grpc.aio.AioRpcError`, and UNAVAILABLE is
retried as the channel's retry policy would. Streaming calls, and services elsewhere, take the
real channel."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import grpc

logger = logging.getLogger(__name__)

Metadata = Sequence[tuple[str, str | bytes]]


@dataclass(frozen=True)
class RetryPolicy:
    """The retries a peer channel makes on UNAVAILABLE (its gRPC service config says the same)."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 2.0
    multiplier: float = 2.0


RETRY = RetryPolicy()
# A service refusing on behalf of every replica (its store is down) asks not to be retried.
_PUSHBACK = "grpc-retry-pushback-ms"


Resolve = Callable[[Any], Awaitable[grpc.RpcMethodHandler | None]]
"""A call's details -> its handler, through the server's interceptors."""


@dataclass
class _Hosted:
    handlers: Mapping[str, grpc.RpcMethodHandler]
    resolve: Resolve
    loop: asyncio.AbstractEventLoop  # the server's: its handlers' pools and locks live there


_HOSTED: dict[str, _Hosted] = {}


def host(
    address: str,
    handlers: Mapping[str, grpc.RpcMethodHandler],
    interceptors: Sequence[grpc.aio.ServerInterceptor],
) -> None:
    """Serve `handlers` (by full method name, "/package.Service/Method") to local callers of
    `address` on this event loop, through `interceptors` as the server would."""
    hosted = dict(handlers)

    async def lookup(details: _CallDetails) -> grpc.RpcMethodHandler | None:
        return hosted.get(details.method)

    resolve: Resolve = lookup
    for interceptor in reversed(interceptors):  # the first one listed runs first
        resolve = _chain(interceptor, resolve)
    _HOSTED[address] = _Hosted(hosted, resolve, asyncio.get_running_loop())


def unhost(address: str) -> None:
    """A server stopping: calls go to the network again (and are refused there, as before)."""
    _HOSTED.pop(address, None)


def _on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:  # called outside a loop: the remote call object handles that
        return False


class _CallDetails(NamedTuple):  # what grpc.HandlerCallDetails carries
    method: str
    invocation_metadata: Metadata


@dataclass
class _Context:
    """The part of grpc.aio.ServicerContext the platform's handlers use."""

    metadata: Metadata
    code_: grpc.StatusCode | None = None  # None until set, as grpc's context says: OK
    details_: str = ""
    trailing: Metadata = ()
    callbacks: list[Callable[[Any], None]] = field(default_factory=list)

    def invocation_metadata(self) -> Metadata:
        return self.metadata

    def set_code(self, code: grpc.StatusCode) -> None:
        self.code_ = code

    def set_details(self, details: str) -> None:
        self.details_ = details

    def code(self) -> grpc.StatusCode | None:
        return self.code_

    def details(self) -> str:
        return self.details_

    def set_trailing_metadata(self, metadata: Metadata) -> None:
        self.trailing = tuple(metadata)

    def peer(self) -> str:
        return "local"

    def add_done_callback(self, callback: Callable[[Any], None]) -> None:
        self.callbacks.append(callback)

    async def abort(
        self, code: grpc.StatusCode, details: str = "", trailing_metadata: Metadata = ()
    ) -> None:
        self.code_, self.details_, self.trailing = code, details, tuple(trailing_metadata)
        raise grpc.aio.AbortError()

    @property
    def failed(self) -> bool:
        return self.code_ not in (None, grpc.StatusCode.OK)

    def finish(self) -> None:
        for callback in self.callbacks:
            callback(self)


async def _serve(
    handler: grpc.RpcMethodHandler, method: str, payload: bytes, context: _Context
) -> bytes | None:
    """The handler's serialized reply; None when it ended with a status instead."""
    try:
        request = handler.request_deserializer(payload)
        response = await handler.unary_unary(request, context)
        if context.failed:
            return None
        return bytes(handler.response_serializer(response))
    except grpc.aio.AbortError:
        return None
    except Exception as exc:
        logger.exception("%s raised", method)  # as grpc's server logs an uncaught error
        context.code_ = grpc.StatusCode.UNKNOWN
        context.details_ = f"Unexpected {type(exc)}: {exc}"  # grpc's words
        return None
    finally:
        context.finish()


def _chain(interceptor: grpc.aio.ServerInterceptor, inner: Resolve) -> Resolve:
    async def call(details: Any) -> grpc.RpcMethodHandler | None:
        handler: grpc.RpcMethodHandler | None = await interceptor.intercept_service(inner, details)
        return handler

    return call


def _error(code: grpc.StatusCode, details: str, trailing: Metadata = ()) -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(*trailing), details)


class _LocalFirst:
    """A unary-unary multicallable: in process when `address` hosts the method, else remote."""

    def __init__(
        self,
        address: str,
        method: str,
        remote: Any,
        serialize: Callable[[Any], bytes] | None,
        deserialize: Callable[[bytes], Any] | None,
    ) -> None:
        self._address, self._method, self._remote = address, method, remote
        self._serialize, self._deserialize = serialize, deserialize

    def __call__(
        self, request: Any, *, timeout: float | None = None, metadata: Metadata = (), **kw: Any
    ) -> Any:
        hosted = _HOSTED.get(self._address)
        if hosted is None or self._method not in hosted.handlers or kw or not _on(hosted.loop):
            return self._remote(request, timeout=timeout, metadata=metadata, **kw)
        return self._local(hosted, request, timeout, tuple(metadata or ()))

    async def _local(
        self, hosted: _Hosted, request: Any, timeout: float | None, metadata: Metadata
    ) -> Any:
        payload = self._serialize(request) if self._serialize else request
        backoff = RETRY.initial_backoff_s
        try:
            async with asyncio.timeout(timeout):
                for attempt in range(1, RETRY.max_attempts + 1):
                    reply, context = await self._attempt(hosted, payload, metadata)
                    if not context.failed:
                        return self._deserialize(reply) if self._deserialize else reply
                    code = context.code_ or grpc.StatusCode.UNKNOWN
                    retry = code == grpc.StatusCode.UNAVAILABLE and not any(
                        key == _PUSHBACK for key, _ in context.trailing
                    )
                    if not retry or attempt == RETRY.max_attempts:
                        raise _error(code, context.details_, context.trailing)
                    await asyncio.sleep(random.uniform(0, backoff))
                    backoff = min(backoff * RETRY.multiplier, RETRY.max_backoff_s)
        except TimeoutError:  # the handler's own errors end as a status, never as this
            pass
        raise _error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")

    async def _attempt(
        self, hosted: _Hosted, payload: Any, metadata: Metadata
    ) -> tuple[Any, _Context]:
        handler = await hosted.resolve(_CallDetails(self._method, metadata))
        context = _Context(metadata)
        if handler is None or handler.unary_unary is None:
            context.code_, context.details_ = grpc.StatusCode.UNIMPLEMENTED, "Method not found!"
            return None, context
        # A task of its own with a fresh context, as a server runs each call: cancelling the
        # caller cancels it, and what the handler sets in context variables stays there.
        serve = _serve(handler, self._method, payload, context)
        reply = await asyncio.get_running_loop().create_task(serve, context=contextvars.Context())
        return reply, context


class LocalFirstChannel(grpc.aio.Channel):  # type: ignore[misc]  # untyped base
    """A peer channel whose unary-unary calls run in process when this process serves the
    callee at `address`; everything else goes over `channel`."""

    def __init__(self, channel: grpc.aio.Channel, address: str) -> None:
        self._channel = channel
        self._address = address

    def unary_unary(
        self,
        method: str,
        request_serializer: Callable[[Any], bytes] | None = None,
        response_deserializer: Callable[[bytes], Any] | None = None,
        _registered_method: bool | None = False,
    ) -> Any:
        remote = self._channel.unary_unary(
            method, request_serializer, response_deserializer, _registered_method
        )
        return _LocalFirst(self._address, method, remote, request_serializer, response_deserializer)

    def unary_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.unary_stream(*args, **kwargs)

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_unary(*args, **kwargs)

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        return self._channel.stream_stream(*args, **kwargs)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    async def __aenter__(self) -> LocalFirstChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

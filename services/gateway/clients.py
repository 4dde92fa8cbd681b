"""gRPC calls to the services behind the gateway: each with a deadline, inside a client span
whose `traceparent` travels in the call's metadata, and with a failed status turned into a
PeerError (errors.py maps it to HTTP). Peers are reached by address (peers.py), never by import."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from hartonomous.runtime.peers import peer_channel
from hartonomous.settings import Settings
from hartonomous.telemetry import tracer
from hartonomous.v1 import (
    billing_pb2,
    billing_pb2_grpc,
    control_pb2,
    control_pb2_grpc,
    inference_pb2,
    inference_pb2_grpc,
    ingest_pb2,
    ingest_pb2_grpc,
    ooda_pb2_grpc,
    provenance_pb2,
    provenance_pb2_grpc,
    search_pb2,
    search_pb2_grpc,
)
from services.gateway.errors import PeerError

# The generated gRPC modules have no type stubs: stubs are Any to the type checker.
_STUBS: dict[str, Any] = {
    "ingest": ingest_pb2_grpc.IngestStub,
    "inference": inference_pb2_grpc.InferenceStub,
    "search": search_pb2_grpc.SearchStub,
    "billing": billing_pb2_grpc.BillingStub,
    "provenance": provenance_pb2_grpc.ProvenanceStub,
    "control": control_pb2_grpc.ControlStub,
    "ooda": ooda_pb2_grpc.OodaStub,
}

# What /readyz asks each peer's health service about. Not the loop (ooda): the public API
# serves without it, and its routes say so (503) while it is away.
HEALTH_NAMES = {
    "ingest": ingest_pb2.DESCRIPTOR.services_by_name["Ingest"].full_name,
    "inference": inference_pb2.DESCRIPTOR.services_by_name["Inference"].full_name,
    "search": search_pb2.DESCRIPTOR.services_by_name["Search"].full_name,
    "billing": billing_pb2.DESCRIPTOR.services_by_name["Billing"].full_name,
    "provenance": provenance_pb2.DESCRIPTOR.services_by_name["Provenance"].full_name,
    "control": control_pb2.DESCRIPTOR.services_by_name["Control"].full_name,
}


@dataclass(frozen=True)
class Rpc:
    service: str
    method: str
    deadline: float
    # HTTP status for RESOURCE_EXHAUSTED (see errors.PeerError).
    exhausted: int = 429


INGEST_ATOM = Rpc("ingest", "IngestAtom", 600.0, exhausted=413)
GET_ATOM = Rpc("ingest", "GetAtom", 5.0)
READ_ATOM = Rpc("ingest", "ReadAtom", 600.0)
RELEASE_ATOM = Rpc("ingest", "ReleaseAtom", 30.0)
ERASE_TENANT = Rpc("ingest", "EraseTenant", 900.0)
LIST_ATOMS = Rpc("ingest", "ListAtoms", 30.0)
INGEST_MODEL = Rpc("ingest", "IngestModel", 3600.0, exhausted=413)
GET_MODEL = Rpc("ingest", "GetModel", 10.0)
GET_MODEL_VERSION = Rpc("ingest", "GetModelVersion", 5.0)
READ_MODEL_FILE = Rpc("ingest", "ReadModelFile", 3600.0)
PROMOTE_MODEL_VERSION = Rpc("ingest", "PromoteModelVersion", 10.0)
DIFF_MODEL_VERSIONS = Rpc("ingest", "DiffModelVersions", 10.0)
EMBED = Rpc("inference", "Embed", 60.0)
GENERATE = Rpc("inference", "Generate", 600.0)
LIST_MODELS = Rpc("inference", "ListModels", 5.0)
VERIFY = Rpc("inference", "Verify", 600.0)
SEARCH = Rpc("search", "Search", 15.0)
GET_USAGE = Rpc("billing", "GetUsage", 10.0)
CHECK_QUOTA = Rpc("billing", "CheckQuota", 1.0)
LIST_INVOICES = Rpc("billing", "ListInvoices", 10.0)
GET_INVOICE = Rpc("billing", "GetInvoice", 10.0)
PUT_RATES = Rpc("billing", "PutRates", 10.0)
PUT_QUOTA = Rpc("billing", "PutQuota", 10.0)
LIST_QUOTAS = Rpc("billing", "ListQuotas", 10.0)
LINEAGE = Rpc("provenance", "Lineage", 10.0)
EXPLAIN = Rpc("provenance", "Explain", 10.0)
TENSOR_MODELS = Rpc("provenance", "TensorModels", 10.0)
GET_CONFIG = Rpc("control", "GetConfig", 5.0)
SET_CONFIG = Rpc("control", "SetConfig", 10.0)
CONFIG_HISTORY = Rpc("control", "ConfigHistory", 5.0)
LIST_DECISIONS = Rpc("ooda", "ListDecisions", 5.0)
APPROVE = Rpc("ooda", "Approve", 10.0)
REJECT = Rpc("ooda", "Reject", 10.0)
LIST_CYCLES = Rpc("ooda", "ListCycles", 5.0)
GET_CYCLE = Rpc("ooda", "GetCycle", 5.0)

HEALTH_DEADLINE = 2.0
# How long an aborted upload waits for the service to refuse the poison before cancelling.
ABORT_GRACE = 2.0

_PROPAGATOR = TraceContextTextMapPropagator()


class Peers:
    def __init__(self, settings: Settings) -> None:
        self._channels = {name: peer_channel(settings, name) for name in _STUBS}
        self._stubs = {name: _STUBS[name](channel) for name, channel in self._channels.items()}
        self._tracer = tracer(__name__)

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()

    async def unary(self, rpc: Rpc, request: Any) -> Any:
        with self._call(rpc) as metadata:
            return await self._method(rpc)(request, timeout=rpc.deadline, metadata=metadata)

    async def stream(self, rpc: Rpc, request: Any) -> AsyncIterator[Any]:
        """A server-streaming call's messages; failures surface as PeerError mid-stream."""
        with self._call(rpc) as metadata:
            call = self._method(rpc)(request, timeout=rpc.deadline, metadata=metadata)
            try:
                async for message in call:
                    yield message
            finally:
                call.cancel()  # a no-op when it finished; stops it when our client went away

    async def upload(self, rpc: Rpc, messages: AsyncIterator[Any], poison: Any) -> Any:
        """A client-streaming call fed as the messages arrive (bounded memory: each write
        waits for flow control). If producing the messages fails, the producer's error
        propagates and the call is aborted so the service stores nothing: `poison` is a
        message the service must reject (its contract), sent before cancelling, because a
        gRPC server sees a cancelled client stream end just as a finished one does."""
        with self._call(rpc) as metadata:
            call = self._method(rpc)(timeout=rpc.deadline, metadata=metadata)
            first = _FirstStatus(call)
            try:
                async for message in messages:
                    await call.write(message)
                await call.done_writing()
            except (asyncio.InvalidStateError, grpc.aio.AioRpcError):
                pass  # the service ended the call early (too large, a bad header)
            except BaseException:
                with contextlib.suppress(Exception):
                    await call.write(poison)
                    await asyncio.wait_for(call, ABORT_GRACE)  # the service's refusal
                call.cancel()
                raise
            try:
                return await call
            except grpc.aio.AioRpcError as final:
                raise first.instead_of(final) from None

    async def health(self, service: str) -> str | None:
        """None when `service` reports SERVING, else what is wrong."""
        stub = health_pb2_grpc.HealthStub(self._channels[service])
        request = health_pb2.HealthCheckRequest(service=HEALTH_NAMES[service])
        try:
            reply: health_pb2.HealthCheckResponse = await stub.Check(
                request, timeout=HEALTH_DEADLINE
            )
        except grpc.aio.AioRpcError as exc:
            return str(exc.code().name)
        if reply.status != health_pb2.HealthCheckResponse.SERVING:
            return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))
        return None

    def _method(self, rpc: Rpc) -> Any:
        return getattr(self._stubs[rpc.service], rpc.method)

    @contextmanager
    def _call(self, rpc: Rpc) -> Iterator[tuple[tuple[str, str], ...]]:
        """A client span for the call, and the metadata that carries it to the callee. The
        span is not made current: a streaming call outlives the code that started it."""
        span = self._tracer.start_span(
            f"{rpc.service}/{rpc.method}",
            kind=trace.SpanKind.CLIENT,
            attributes={"rpc.system": "grpc", "rpc.service": rpc.service, "rpc.method": rpc.method},
        )
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier, context=trace.set_span_in_context(span))
        try:
            yield tuple(carrier.items())
        except grpc.aio.AioRpcError as exc:
            span.set_attribute("rpc.grpc.status_code", exc.code().value[0])
            span.set_status(trace.StatusCode.ERROR, exc.code().name)
            raise PeerError(
                rpc.service, rpc.method, exc.code(), exc.details() or "", rpc.exhausted
            ) from None
        finally:
            span.end()


class _FirstStatus:
    """The status a streaming call first reported. When the service ends the call while a write
    is in flight, grpc's aio client (1.85) sets its own INTERNAL ("Internal error from Core")
    once that write fails, replacing the status the service sent if that came first; when the
    write fails first, the service's status replaces grpc's. So of the first report and the
    final one, the service's is the one that is not INTERNAL. grpc has no public way to read a
    status in its done callback (the moment it is set), hence its call's own field."""

    def __init__(self, call: Any) -> None:
        self.reported: tuple[grpc.StatusCode, str] | None = None
        call.add_done_callback(self._record)

    def _record(self, call: Any) -> None:
        status = getattr(getattr(call, "_cython_call", None), "_status", None)
        if status is not None:
            code = next((c for c in grpc.StatusCode if c.value[0] == status.code()), None)
            self.reported = (code, status.details()) if code else None

    def instead_of(self, final: grpc.aio.AioRpcError) -> grpc.aio.AioRpcError:
        if self.reported is None or final.code() != grpc.StatusCode.INTERNAL:
            return final
        code, details = self.reported
        return grpc.aio.AioRpcError(
            code, final.initial_metadata(), final.trailing_metadata(), details
        )

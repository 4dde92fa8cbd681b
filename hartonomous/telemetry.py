"""Structured JSON logs on stderr (stdout is kept for output a script may read), stamped with
the current OpenTelemetry trace, and the helpers that carry a trace across gRPC and the log.

A trace crosses process boundaries as a W3C `traceparent`: in gRPC metadata between services,
and in the envelope headers of every event (hartonomous.events.Envelope.traceparent). A consumer
continues the producer's trace with `continue_trace(name, envelope.traceparent)`."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider, sampling
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from opentelemetry.util.types import Attributes

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_PROPAGATOR = TraceContextTextMapPropagator()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = trace.format_trace_id(span.trace_id)
            entry["span_id"] = trace.format_span_id(span.span_id)
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


@functools.cache
def tracer(name: str) -> trace.Tracer:
    """A tracer (named for the instrumenting module) that makes real spans. Without an SDK
    provider the API hands out invalid span contexts and no traceparent would ever be sent; a
    provider an operator installed first is kept. With `OTEL_EXPORTER_OTLP_ENDPOINT` (or
    `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, spans are exported there over OTLP/HTTP
    (protobuf) in batches, configured by the exporter's usual `OTEL_*` variables.

    One tracer per name, made once: the global provider cannot change once set, and making a
    tracer (its scope, a deprecation check) cost ~3% of the request path's CPU per span."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        provider = OnDemandTracerProvider(Resource.create({"service.name": "hartonomous"}))
        if any(os.environ.get(name) for name in _OTLP_ENDPOINTS):
            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
    return trace.get_tracer(name)


class _RecordOnceExported(sampling.Sampler):
    """The SDK's default sampler once a span processor receives spans, and none recorded
    before: a span nobody exports is only used for its ids (in the logs, in `traceparent`),
    which an unrecorded span has too, for a fraction of the cost (~0.4 ms of CPU per request
    through the gateway, measured)."""

    def __init__(self) -> None:
        self.exported = False
        self._default = sampling.ParentBased(sampling.ALWAYS_ON)

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: trace.SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[trace.Link] | None = None,
        trace_state: trace.TraceState | None = None,
    ) -> sampling.SamplingResult:
        if not self.exported:
            return sampling.SamplingResult(sampling.Decision.DROP)
        return self._default.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        return "RecordOnceExported"


class OnDemandTracerProvider(TracerProvider):
    """Records spans from the moment a span processor is added (an exporter, a test's)."""

    def __init__(self, resource: Resource) -> None:
        self._sampler = _RecordOnceExported()
        super().__init__(resource=resource, sampler=self._sampler)

    def add_span_processor(self, span_processor: SpanProcessor) -> None:
        super().add_span_processor(span_processor)
        self._sampler.exported = True


_OTLP_ENDPOINTS = {"OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"}


@contextmanager
def continue_trace(
    name: str, traceparent: str | None, kind: trace.SpanKind = trace.SpanKind.CONSUMER
) -> Iterator[trace.Span]:
    """A span that continues the trace `traceparent` names (a new trace when it is None):
    `with continue_trace("search: EmbeddingComputed", event.envelope.traceparent): ...`."""
    parent = _PROPAGATOR.extract({"traceparent": traceparent} if traceparent else {})
    with tracer(__name__).start_as_current_span(name, context=parent, kind=kind) as span:
        yield span


@contextmanager
def span(name: str) -> Iterator[trace.Span]:
    """A child of the current span, for a part of a request's time worth seeing on its own
    (a store query, a log append): `with span("search: store query"): ...`."""
    with tracer(__name__).start_as_current_span(name) as current:
        yield current


def current_traceparent() -> str | None:
    """The W3C traceparent of the current span, for a call that should nest under it."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def record_span(name: str, start_ns: int, end_ns: int) -> None:
    """A finished child of the current span, timed elsewhere (wall clock, ns): a wait that
    happened in another task or thread, such as a batch a request joined."""
    tracer(__name__).start_span(name, start_time=start_ns).end(end_time=end_ns)

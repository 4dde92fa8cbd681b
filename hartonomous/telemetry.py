"""Structured JSON logs on stderr (stdout is kept for output a script may read), stamped with
the current OpenTelemetry trace, and the helpers that carry a trace across gRPC and the log.

A trace crosses process boundaries as a W3C `traceparent`: in gRPC metadata between services,
and in the envelope headers of every event (hartonomous.events.Envelope.traceparent). A consumer
continues the producer's trace with `continue_trace(name, envelope.traceparent)`."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

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


def tracer(name: str) -> trace.Tracer:
    """A tracer (named for the instrumenting module) that makes real spans. Without an SDK
    provider the API hands out invalid span contexts and no traceparent would ever be sent; a
    provider an operator installed first (e.g. with an OTLP exporter) is kept."""
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        resource = Resource.create({"service.name": "hartonomous"})
        trace.set_tracer_provider(TracerProvider(resource=resource))
    return trace.get_tracer(name)


@contextmanager
def continue_trace(
    name: str, traceparent: str | None, kind: trace.SpanKind = trace.SpanKind.CONSUMER
) -> Iterator[trace.Span]:
    """A span that continues the trace `traceparent` names (a new trace when it is None):
    `with continue_trace("search: EmbeddingComputed", event.envelope.traceparent): ...`."""
    parent = _PROPAGATOR.extract({"traceparent": traceparent} if traceparent else {})
    with tracer(__name__).start_as_current_span(name, context=parent, kind=kind) as span:
        yield span

"""Spans are recorded only once something receives them; before that they still carry the ids
the logs and `traceparent` need."""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from hartonomous.telemetry import OnDemandTracerProvider


def _traceparent() -> str:
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier["traceparent"]


def test_spans_are_recorded_once_a_processor_receives_them() -> None:
    provider = OnDemandTracerProvider(Resource.create({"service.name": "test"}))
    tracer = provider.get_tracer(__name__)
    with tracer.start_as_current_span("unexported") as unexported:
        assert not unexported.is_recording()
        ids = unexported.get_span_context()
        assert ids.is_valid  # the logs and the next hop still get a trace id
        assert _traceparent().split("-")[1] == trace.format_trace_id(ids.trace_id)

    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with tracer.start_as_current_span("parent"), tracer.start_as_current_span("child") as child:
        assert child.is_recording()
    assert [s.name for s in exporter.get_finished_spans()] == ["child", "parent"]

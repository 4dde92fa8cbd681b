"""One search's trace, as an OTLP collector would receive it: a server span per gRPC call,
continuing the caller's traceparent, and under it each part of the request's time (the
query's embedding with the inference call, the batcher's queue and model call, the store
query, the search's metering append), all in the caller's trace. The query's tokens are billed
in the search's own append, so inference appends nothing for them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hartonomous.telemetry import tracer
from hartonomous.v1 import search_pb2
from tests.integration.search.conftest import Platform
from tests.support.search_projection import A

pytestmark = pytest.mark.asyncio(loop_scope="module")


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    tracer(__name__)  # the platform's provider, as the services use it
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    yield exporter
    processor.shutdown()


async def test_a_dense_search_is_one_trace_with_every_part_under_its_call(
    platform: Platform, exported: InMemorySpanExporter
) -> None:
    trace_id = uuid.uuid4().hex
    caller = uuid.uuid4().hex[:16]
    request = search_pb2.SearchRequest(
        tenant_id=A, query="file locking on unix", mode=search_pb2.SEARCH_MODE_DENSE
    )
    metadata = (("traceparent", f"00-{trace_id}-{caller}-01"),)
    assert (await platform.search.Search(request, metadata=metadata)).results

    spans = [s for s in exported.get_finished_spans() if f"{s.context.trace_id:032x}" == trace_id]
    by_name = {s.name: s for s in spans}

    def parent(name: str) -> str:
        span = by_name[name]
        assert span.parent is not None, name
        found = [s for s in spans if s.context.span_id == span.parent.span_id]
        return found[0].name if found else f"{span.parent.span_id:016x}"

    assert parent("hartonomous.v1.Search/Search") == caller
    assert parent("search: embed query") == "hartonomous.v1.Search/Search"
    assert parent("hartonomous.v1.Inference/Embed") == "search: embed query"
    for part in ("inference: batcher queue", "inference: tokenize + model"):
        assert parent(part) == "hartonomous.v1.Inference/Embed"
    assert "inference: metering append" not in by_name  # one append per search: the search's
    assert parent("search: store query") == "hartonomous.v1.Search/Search"
    assert parent("search: metering append") == "hartonomous.v1.Search/Search"
    queue, model = by_name["inference: batcher queue"], by_name["inference: tokenize + model"]
    assert _ns(queue)[1] <= _ns(model)[0] < _ns(model)[1]  # the wait, then the model's work


def _ns(span: ReadableSpan) -> tuple[int, int]:
    assert span.start_time is not None and span.end_time is not None
    return span.start_time, span.end_time

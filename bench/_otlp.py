"""A minimal OTLP/HTTP trace receiver for the benchmarks, and a request's latency budget from
its spans.

The platform exports its spans here when started with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing
at `Receiver.endpoint` (protobuf over HTTP, the exporter's default). A client that sends its
own `traceparent` with each request knows each request's trace id, so its spans can be found
again: `budget` splits a trace's time into each span's *own* time (its duration less its
children's), named by span name, plus the time outside the platform's first span (the
client's HTTP stack and the server's, before and after the request span)."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from bench.common import percentile

OUTSIDE = "client + HTTP server, outside the request span"


@dataclass(frozen=True)
class Span:
    span_id: str
    parent_id: str
    name: str
    start_ns: int
    end_ns: int


class Receiver:
    """Spans by trace id (hex), as the exporter posts them."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        self._lock = threading.Lock()
        self._spans: dict[str, list[Span]] = collections.defaultdict(list)

    def add(self, body: bytes) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self._lock:
            for resource in request.resource_spans:
                for scope in resource.scope_spans:
                    for s in scope.spans:
                        self._spans[s.trace_id.hex()].append(
                            Span(
                                s.span_id.hex(),
                                s.parent_span_id.hex(),
                                s.name,
                                s.start_time_unix_nano,
                                s.end_time_unix_nano,
                            )
                        )

    def spans(self, trace_id: str) -> list[Span]:
        with self._lock:
            return list(self._spans.get(trace_id, ()))


@contextmanager
def receiving() -> Iterator[Receiver]:
    """A receiver on a free loopback port, served from a thread until the block ends."""
    receiver: Receiver | None = None

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            assert receiver is not None
            receiver.add(body)
            reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver = Receiver(server)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


def exporting_to(receiver: Receiver) -> dict[str, str]:
    """The platform's environment for exporting its spans to `receiver` at once."""
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BSP_MAX_QUEUE_SIZE": "65536",  # a span dropped would leave a hole in a budget
    }


def own_times(spans: Sequence[Span], client_ms: float) -> dict[str, float]:
    """Each span name's own time in ms (summed over spans of that name), and OUTSIDE."""
    children: dict[str, list[Span]] = collections.defaultdict(list)
    ids = {s.span_id for s in spans}
    roots = [s for s in spans if s.parent_id not in ids]
    for s in spans:
        children[s.parent_id].append(s)
    own: dict[str, float] = collections.defaultdict(float)
    for s in spans:
        inner = sum(c.end_ns - c.start_ns for c in children[s.span_id])
        own[s.name] += max(0, s.end_ns - s.start_ns - inner) / 1e6
    inside = sum(r.end_ns - r.start_ns for r in roots) / 1e6
    own[OUTSIDE] = max(0.0, client_ms - inside)
    return dict(own)


@dataclass(frozen=True)
class Part:
    name: str
    p50_ms: float
    p99_ms: float
    share: float  # of the requests' mean latency, from the mean of this part


def budget(requests: Sequence[dict[str, float]], latencies_ms: Sequence[float]) -> list[Part]:
    """Per part: p50 and p99 of its own time over the requests (0 where a request had none),
    and its share of the mean latency; largest share first."""
    names = {name for r in requests for name in r}
    mean_latency = sum(latencies_ms) / len(latencies_ms)
    parts = []
    for name in names:
        times = [r.get(name, 0.0) for r in requests]
        share = sum(times) / len(times) / mean_latency
        parts.append(Part(name, percentile(times, 50), percentile(times, 99), share))
    return sorted(parts, key=lambda p: -p.share)


def print_budget(parts: Sequence[Part], latencies_ms: Sequence[float]) -> None:
    """The table of `budget`'s parts, after the traced requests' own p50 and p99."""
    p50, p99 = percentile(list(latencies_ms), 50), percentile(list(latencies_ms), 99)
    print(f"  traced (spans exported): p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(f"  {'part':<52} {'p50 ms':>8} {'p99 ms':>8} {'share':>6}")
    for part in parts:
        print(f"  {part.name:<52} {part.p50_ms:>8.2f} {part.p99_ms:>8.2f} {part.share:>6.1%}")

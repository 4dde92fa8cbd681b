"""Every request observed once: an OpenTelemetry server span (continuing the caller's
`traceparent` when it sends one), a Prometheus histogram by route template and status, the
process's telemetry window (hartonomous.runtime.windows), and a JSON access log line that
carries the trace id (hartonomous.telemetry stamps it).

The trace goes on from here through gRPC metadata (clients.py), and from the services into
the `traceparent` envelope header of every event they append."""

from __future__ import annotations

import logging
import time

from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Histogram
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hartonomous.runtime.windows import WindowRecorder
from hartonomous.telemetry import tracer

logger = logging.getLogger("services.gateway.access")

REQUEST_SECONDS = Histogram(
    "hartonomous_http_request_duration_seconds",
    "Gateway requests by method, route template and status",
    ["method", "route", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

# Unknown paths share one label, so scanners cannot blow up the metric's cardinality.
UNMATCHED = "unmatched"

_PROPAGATOR = TraceContextTextMapPropagator()


class RequestTelemetry:
    def __init__(self, app: ASGIApp, recorder: WindowRecorder) -> None:
        self.app = app
        self._recorder = recorder
        self._tracer = tracer(__name__)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        carrier = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent = _PROPAGATOR.extract(carrier)
        method = scope["method"]
        status = 500
        feed = False  # a server-sent event stream: open for minutes, no request latency
        started = time.perf_counter()

        async def observed(message: Message) -> None:
            nonlocal status, feed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                feed = any(
                    k == b"content-type" and v.startswith(b"text/event-stream")
                    for k, v in message.get("headers", ())
                )
            await send(message)

        with self._tracer.start_as_current_span(
            method, context=parent, kind=trace.SpanKind.SERVER
        ) as span:
            try:
                await self.app(scope, receive, observed)
            finally:
                # Routing filled in scope["route"]: its template names the span and the metric.
                route = scope.get("route")
                template = route.path if isinstance(route, Route) else UNMATCHED
                elapsed = time.perf_counter() - started
                span.update_name(f"{method} {template}")
                span.set_attribute("http.request.method", method)
                span.set_attribute("http.route", template)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(trace.StatusCode.ERROR)
                if not feed:
                    REQUEST_SECONDS.labels(method, template, str(status)).observe(elapsed)
                    self._recorder.observe(f"{method} {template}", elapsed, failed=status >= 500)
                principal = scope.get("state", {}).get("principal")
                logger.info(
                    "%s %s %d",
                    method,
                    template,
                    status,
                    extra={
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                        "tenant_id": getattr(principal, "tenant_id", None),
                        "key_id": getattr(principal, "key_id", None),
                    },
                )

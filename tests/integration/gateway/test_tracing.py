"""One trace from the HTTP request through gRPC: the caller's `traceparent` is continued,
sent to every peer in the call's metadata, stamped on log lines, and continued by consumers."""

from __future__ import annotations

import json
import logging
import uuid

import grpc
import pytest

from hartonomous.telemetry import JsonFormatter, continue_trace
from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")


def trace_of(traceparent: str) -> str:
    version, trace_id, span_id, flags = traceparent.split("-")
    assert (version, len(span_id), len(flags)) == ("00", 16, 2)
    return trace_id


async def test_the_callers_trace_reaches_every_peer(gw: Gateway) -> None:
    trace_id, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    headers = {**gw.auth(), "traceparent": f"00-{trace_id}-{caller_span}-01"}
    reply = await gw.http.post("/v1/search", json={"query": "q"}, headers=headers)
    assert reply.status_code == 200
    sent = [gw.peers.script.metadata[m][0]["traceparent"] for m in ("CheckQuota", "Search")]
    assert {trace_of(t) for t in sent} == {trace_id}
    assert len({t.split("-")[2] for t in sent} | {caller_span}) == 3  # a client span per call


async def test_without_a_traceparent_a_new_trace_starts_and_errors_name_it(gw: Gateway) -> None:
    gw.peers.script.failures["Search"] = (grpc.StatusCode.INTERNAL, "boom")
    reply = await gw.http.post("/v1/search", json={"query": "q"}, headers=gw.auth())
    (sent,) = gw.peers.script.metadata["Search"]
    assert reply.json()["trace_id"] == trace_of(sent["traceparent"])


async def test_log_lines_carry_the_current_trace() -> None:
    traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    record = logging.makeLogRecord({"msg": "handled", "levelname": "INFO"})
    assert "trace_id" not in json.loads(JsonFormatter().format(record))
    with continue_trace("search: EmbeddingComputed", traceparent) as span:
        line = json.loads(JsonFormatter().format(record))
    assert line["trace_id"] == trace_of(traceparent)
    assert line["span_id"] == f"{span.get_span_context().span_id:016x}"

"""Admission by billing's CheckQuota: refuse over the limit, warn past the soft limit, and
let requests through (saying so) when billing cannot answer, unless configured not to."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import grpc
import pytest

from hartonomous.v1 import billing_pb2
from services.gateway.quota import WARNING_HEADER
from tests.integration.gateway.conftest import CONFIG, Gateway, running_gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

EMBED = {"input": "hello", "model": "all-MiniLM-L6-v2"}


async def test_over_the_quota_is_429_until_the_period_resets(gw: Gateway) -> None:
    gw.peers.script.quota = billing_pb2.QuotaDecision(
        allowed=False, limit="1000", used="1000", unit="tokens", retry_after_seconds=3600
    )
    reply = await gw.http.post("/v1/embeddings", json=EMBED, headers=gw.auth())
    assert reply.status_code == 429
    assert reply.headers["retry-after"] == "3600"
    body = reply.json()
    assert body["type"] == "urn:hartonomous:problem:quota-exceeded"
    assert "1000 of 1000 tokens" in body["detail"]
    assert "Embed" not in gw.peers.script.requests  # refused before any work


async def test_past_the_soft_limit_the_request_goes_through_with_a_warning(gw: Gateway) -> None:
    gw.peers.script.quota = billing_pb2.QuotaDecision(
        allowed=True, soft_limit_reached=True, limit="1000", used="850", unit="tokens"
    )
    reply = await gw.http.post("/v1/embeddings", json=EMBED, headers=gw.auth())
    assert reply.status_code == 200
    assert reply.headers[WARNING_HEADER] == "soft limit reached (embed: 850 of 1000 tokens used)"


@pytest.mark.parametrize(
    "code",
    [grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNIMPLEMENTED],
)
async def test_billing_down_fails_open_and_says_so(gw: Gateway, code: grpc.StatusCode) -> None:
    gw.peers.script.failures["CheckQuota"] = (code, "billing is away")
    reply = await gw.http.post("/v1/search", json={"query": "q"}, headers=gw.auth())
    assert reply.status_code == 200
    assert "not checked" in reply.headers[WARNING_HEADER]


async def test_billing_errors_other_than_down_are_not_swallowed(gw: Gateway) -> None:
    gw.peers.script.failures["CheckQuota"] = (grpc.StatusCode.INVALID_ARGUMENT, "bad operation")
    reply = await gw.http.post("/v1/search", json={"query": "q"}, headers=gw.auth())
    assert reply.status_code == 422 and "Search" not in gw.peers.script.requests


async def test_fail_closed_answers_503(tmp_path: Path) -> None:
    async with running_gateway(replace(CONFIG, quota_fail_open=False), tmp_path) as gw:
        gw.peers.script.failures["CheckQuota"] = (grpc.StatusCode.UNAVAILABLE, "away")
        reply = await gw.http.post("/v1/search", json={"query": "q"}, headers=gw.auth())
    assert reply.status_code == 503 and reply.headers["retry-after"]

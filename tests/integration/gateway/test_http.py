"""The HTTP surface against fake peers: routes translate faithfully, the tenant comes from the
key, roles are enforced, and every error (ours, FastAPI's, a peer's gRPC status, a bug) is
an RFC 7807 problem without internals."""

from __future__ import annotations

import base64
import struct
from typing import Any

import grpc
import httpx
import pytest

from services.gateway.clients import Rpc
from services.gateway.keys import Role, parse
from services.gateway.routes import search as search_route
from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

PROBLEM = "application/problem+json"
MISSING = "0" * 64


def problem(reply: httpx.Response, status: int, kind: str | None = None) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == PROBLEM
    body: dict[str, Any] = reply.json()
    assert body["status"] == status and body["title"] and body["instance"]
    assert len(body["trace_id"]) == 32
    assert "Traceback" not in reply.text
    if kind:
        assert body["type"] == f"urn:hartonomous:problem:{kind}"
    return body


async def test_the_tenant_comes_from_the_key_never_the_request(gw: Gateway) -> None:
    body = {"query": "ledger", "tenant_id": "globex"}
    assert (await gw.http.post("/v1/search", json=body, headers=gw.auth())).status_code == 422
    reply = await gw.http.post("/v1/search", json={"query": "ledger"}, headers=gw.auth())
    assert reply.status_code == 200
    (sent,) = gw.peers.script.requests["Search"]
    assert sent.tenant_id == gw.tenant_ids["acme"]
    key = parse(gw.keys[("acme", Role.WRITER)])
    assert key is not None and sent.api_key_id == key[0]  # recorded on the search's usage
    (check,) = gw.peers.script.requests["CheckQuota"]
    assert check.tenant_id == gw.tenant_ids["acme"]
    assert (check.operation, check.quantity) == ("search", "1")  # one request, reserved


async def test_search_translates_modes_and_filters(gw: Gateway) -> None:
    body = {
        "query": "ledger",
        "k": 3,
        "mode": "sparse",
        "filter": {"modality": "text", "metadata": {"year": 2024, "draft": False, "team": "a"}},
    }
    reply = await gw.http.post("/v1/search", json=body, headers=gw.auth(Role.READER))
    assert reply.json()["results"][0] == {
        "atom_id": "a" * 64,
        "document_id": "b" * 64,
        "score": 0.5,
        "snippet": "ledger",
        "chunk_index": 0,
    }
    (sent,) = gw.peers.script.requests["Search"]
    assert (sent.k, sent.mode, sent.filter.modality) == (3, 2, "text")
    assert dict(sent.filter.metadata) == {"year": "2024", "draft": "false", "team": "a"}


async def test_embeddings_float_and_base64(gw: Gateway) -> None:
    body = {"input": ["one two", "three"], "model": "all-MiniLM-L6-v2"}
    floats = (await gw.http.post("/v1/embeddings", json=body, headers=gw.auth())).json()
    packed = await gw.http.post(
        "/v1/embeddings", json={**body, "encoding_format": "base64"}, headers=gw.auth()
    )
    assert floats["data"][0] == {
        "object": "embedding",
        "index": 0,
        "embedding": [0.5, -0.25, 0.125],
    }
    assert floats["usage"] == {"prompt_tokens": 7, "total_tokens": 7}
    vector = struct.unpack("<3f", base64.b64decode(packed.json()["data"][1]["embedding"]))
    assert vector == (0.5, -0.25, 0.125)
    (sent, _) = gw.peers.script.requests["Embed"]
    assert sent.model == "sentence-transformers/all-MiniLM-L6-v2"
    assert list(sent.texts) == ["one two", "three"]


async def test_json_ingest_then_read_back(gw: Gateway) -> None:
    created = await gw.http.post(
        "/v1/atoms",
        json={"content": "héllo", "metadata": {"team": "a"}, "mime_type": "text/plain"},
        headers=gw.auth(),
    )
    assert created.status_code == 201, created.text
    atom_id = created.json()["atom_id"]
    (upload,) = gw.peers.ingest.uploads
    assert upload.header.api_key_id == gw.keys[("acme", Role.WRITER)].split("_")[1]
    assert upload.header.tenant_id == gw.tenant_ids["acme"]
    (check,) = gw.peers.script.requests["CheckQuota"]
    assert (check.operation, check.quantity) == ("ingest", str(len("héllo".encode())))

    atom = (await gw.http.get(f"/v1/atoms/{atom_id}", headers=gw.auth(Role.READER))).json()
    assert atom["metadata"] == {"team": "a"} and atom["size_bytes"] == 6
    content = await gw.http.get(f"/v1/atoms/{atom_id}/content", headers=gw.auth(Role.READER))
    assert content.content == "héllo".encode()
    assert content.headers["content-type"].startswith("text/plain")
    other = await gw.http.get(f"/v1/atoms/{atom_id}", headers=gw.auth(tenant="globex"))
    problem(other, 404)


async def test_usage_is_the_callers(gw: Gateway) -> None:
    reply = await gw.http.get(
        "/v1/usage",
        params={"from": "2026-01-01T00:00:00Z", "group_by": "day"},
        headers=gw.auth(Role.READER, "globex"),
    )
    assert reply.json()["lines"][0]["quantity"] == "12"
    (sent,) = gw.peers.script.requests["GetUsage"]
    assert sent.tenant_id == gw.tenant_ids["globex"]
    assert sent.group_by == 2 and sent.HasField("from") and not sent.HasField("to")


@pytest.mark.parametrize(
    ("headers", "why"),
    [
        ({}, "send an API key"),
        ({"Authorization": "Bearer nope"}, "malformed"),
        ({"Authorization": "Token abc"}, "send an API key"),
        ({"Authorization": f"Bearer hk_{'0' * 16}_{'a' * 43}"}, "not valid"),
    ],
)
async def test_missing_or_bad_keys_are_401(gw: Gateway, headers: dict[str, str], why: str) -> None:
    reply = await gw.http.get("/v1/usage", headers=headers)
    assert why in problem(reply, 401, "unauthenticated")["detail"]
    assert reply.headers["www-authenticate"].startswith("Bearer")
    assert not gw.peers.script.requests


async def test_a_wrong_secret_or_a_revoked_key_is_401(gw: Gateway) -> None:
    key = gw.keys[("acme", Role.READER)]
    forged = key[:-4] + ("AAAA" if not key.endswith("AAAA") else "BBBB")
    problem(await gw.http.get("/v1/usage", headers={"Authorization": f"Bearer {forged}"}), 401)
    tenant = await gw.store.find_tenant("acme")
    assert tenant is not None
    doomed = await gw.store.issue_key(tenant, Role.ADMIN)
    headers = {"Authorization": f"Bearer {doomed.secret_key}"}
    assert (await gw.http.get("/v1/usage", headers=headers)).status_code == 200
    assert await gw.store.revoke(doomed.key_id)
    problem(await gw.http.get("/v1/usage", headers=headers), 401)


@pytest.mark.parametrize(
    ("role", "method", "path", "body"),
    [
        (Role.READER, "POST", "/v1/atoms", {"content": "x"}),
        (Role.READER, "POST", "/v1/embeddings", {"input": "x", "model": "all-MiniLM-L6-v2"}),
        (Role.WRITER, "PUT", "/v1/admin/rates", {"currency": "USD", "rates": []}),
        (Role.WRITER, "PUT", "/v1/admin/tenants/acme/quota", {"operation": "x"}),
    ],
)
async def test_roles_are_enforced(
    gw: Gateway, role: Role, method: str, path: str, body: dict[str, Any]
) -> None:
    reply = await gw.http.request(method, path, json=body, headers=gw.auth(role))
    assert (
        f"needs the {Role.WRITER if role is Role.READER else Role.ADMIN} role"
        in (problem(reply, 403, "forbidden")["detail"])
    )
    assert not gw.peers.script.requests


async def test_admin_sets_quotas_and_rates_for_known_tenants_only(gw: Gateway) -> None:
    quota = {"operation": "embed", "limit": "1000", "unit": "tokens", "soft_limit_ratio": "0.8"}
    admin = gw.auth(Role.ADMIN)
    unknown = await gw.http.put("/v1/admin/tenants/nobody/quota", json=quota, headers=admin)
    problem(unknown, 404)
    by_name = await gw.http.put("/v1/admin/tenants/globex/quota", json=quota, headers=admin)
    assert by_name.status_code == 200, by_name.text
    (sent,) = gw.peers.script.requests["PutQuota"]
    assert sent.tenant_id == gw.tenant_ids["globex"] and sent.period == 2  # month by default


@pytest.mark.parametrize(
    ("code", "status", "kind"),
    [
        (grpc.StatusCode.INVALID_ARGUMENT, 422, "invalid-request"),
        (grpc.StatusCode.NOT_FOUND, 404, None),
        (grpc.StatusCode.PERMISSION_DENIED, 403, "forbidden"),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, 429, "rate-limited"),
        (grpc.StatusCode.UNAVAILABLE, 503, "unavailable"),
        (grpc.StatusCode.DEADLINE_EXCEEDED, 504, None),
        (grpc.StatusCode.UNIMPLEMENTED, 501, None),
        (grpc.StatusCode.INTERNAL, 500, None),
        (grpc.StatusCode.DATA_LOSS, 500, None),
    ],
)
async def test_peer_statuses_become_http_problems(
    gw: Gateway, code: grpc.StatusCode, status: int, kind: str | None
) -> None:
    gw.peers.script.failures["Search"] = (code, "peer says: secret detail at /srv/x.py")
    reply = await gw.http.post("/v1/search", json={"query": "q"}, headers=gw.auth())
    body = problem(reply, status, kind)
    if status < 500:
        assert body["detail"] == "peer says: secret detail at /srv/x.py"  # written for callers
    else:
        assert "secret" not in reply.text and "search" in body["detail"]
    if status == 503:
        assert int(reply.headers["retry-after"]) >= 1


async def test_resource_exhausted_on_upload_is_413(gw: Gateway) -> None:
    gw.peers.script.failures["IngestAtom"] = (grpc.StatusCode.RESOURCE_EXHAUSTED, "too big")
    reply = await gw.http.post("/v1/atoms", json={"content": "x" * 1000}, headers=gw.auth())
    problem(reply, 413, "too-large")


async def test_a_slow_peer_meets_its_deadline(gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(search_route, "SEARCH", Rpc("search", "Search", 0.2))
    gw.peers.script.delays["Search"] = 1.0
    reply = await gw.http.post("/v1/search", json={"query": "q"}, headers=gw.auth())
    problem(reply, 504)


async def test_routing_and_validation_errors_are_problems(gw: Gateway) -> None:
    problem(await gw.http.get("/nowhere"), 404)
    not_allowed = await gw.http.delete("/v1/search")
    problem(not_allowed, 405)
    assert not_allowed.headers["allow"] == "POST"
    invalid = await gw.http.post("/v1/search", json={"query": "", "k": 0}, headers=gw.auth())
    errors = problem(invalid, 422, "invalid-request")["errors"]
    assert {tuple(e["loc"]) for e in errors} == {("body", "query"), ("body", "k")}
    assert all("input" not in e for e in errors)  # never echoes what was sent
    garbled = await gw.http.post(
        "/v1/search", content=b"{", headers={**gw.auth(), "Content-Type": "application/json"}
    )
    problem(garbled, 422)
    plain = await gw.http.post(
        "/v1/atoms", content=b"x", headers={**gw.auth(), "Content-Type": "text/plain"}
    )
    problem(plain, 415)
    bad_id = await gw.http.get("/v1/atoms/not-a-hash", headers=gw.auth())
    problem(bad_id, 422)


async def test_bodies_over_the_limit_are_413(gw: Gateway) -> None:
    big = {"input": "x" * (70 * 1024), "model": "all-MiniLM-L6-v2"}
    problem(await gw.http.post("/v1/embeddings", json=big, headers=gw.auth()), 413, "too-large")

    async def chunked() -> Any:  # no Content-Length: counted as it streams
        for _ in range(80):
            yield b"x" * 1024

    streamed = await gw.http.post(
        "/v1/search",
        content=chunked(),
        headers={**gw.auth(), "Content-Type": "application/json"},
    )
    problem(streamed, 413, "too-large")
    assert not gw.peers.script.requests


async def test_an_unexpected_error_is_a_bare_500(gw: Gateway) -> None:
    # The fake catalog hands back metadata that is not JSON: the route fails unexpectedly.
    gw.peers.ingest.atoms[(gw.tenant_ids["acme"], "c" * 64)] = (b"x", "text/plain", "{oops")
    reply = await gw.http.get(f"/v1/atoms/{'c' * 64}", headers=gw.auth())
    body = problem(reply, 500)
    assert body["detail"] == "an internal error occurred" and "oops" not in reply.text

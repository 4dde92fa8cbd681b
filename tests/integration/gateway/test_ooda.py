"""/v1/ooda: the loop's cycles and decisions for admins, from the real decide stage; a bad
request or an unknown id is a problem. (Approval end to end: tests/integration/ooda.)"""

from __future__ import annotations

import pytest

from services.gateway.keys import Role
from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

UNKNOWN = "0190f0f0-0000-7000-8000-000000000000"


async def test_a_quiet_loop_has_no_cycles_or_decisions(gw: Gateway) -> None:
    admin = gw.auth(Role.ADMIN)
    for path in ("/v1/ooda/cycles", "/v1/ooda/decisions?status=pending"):
        reply = await gw.http.get(path, headers=admin)
        assert (reply.status_code, reply.json()) == (200, []), path


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "detail"),
    [
        ("GET", f"/v1/ooda/cycles/{UNKNOWN}", None, 404, f"no cycle {UNKNOWN}"),
        ("GET", f"/v1/ooda/cycles/{UNKNOWN}/explain", None, 404, f"no cycle {UNKNOWN}"),
        ("POST", f"/v1/admin/ooda/decisions/{UNKNOWN}/approve", {}, 404, UNKNOWN),
        ("POST", f"/v1/admin/ooda/decisions/{UNKNOWN}/reject", {"reason": "no"}, 404, UNKNOWN),
        ("GET", "/v1/ooda/decisions?status=maybe", None, 422, "Input should be"),
        ("GET", "/v1/ooda/cycles?limit=5000", None, 422, "less than or equal to 1000"),
        ("POST", f"/v1/admin/ooda/decisions/{UNKNOWN}/approve", {"why": "x"}, 422, "Extra inputs"),
    ],
)
async def test_a_bad_request_is_a_problem(
    gw: Gateway, method: str, path: str, body: object, status: int, detail: str
) -> None:
    reply = await gw.http.request(method, path, json=body, headers=gw.auth(Role.ADMIN))
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    problem = reply.json()
    assert detail in problem["detail"] or any(detail in e["msg"] for e in problem.get("errors", []))


async def test_only_an_admin_sees_or_governs_the_loop(gw: Gateway) -> None:
    writer = gw.auth(Role.WRITER)
    assert (await gw.http.get("/v1/ooda/cycles", headers=writer)).status_code == 403
    approve = f"/v1/admin/ooda/decisions/{UNKNOWN}/approve"
    assert (await gw.http.post(approve, json={}, headers=writer)).status_code == 403
    assert (await gw.http.get("/v1/ooda/decisions")).status_code == 401
    mode = {"mode": "off", "reason": "r"}
    assert (await gw.http.put("/v1/admin/ooda/mode", json=mode, headers=writer)).status_code == 403


async def test_the_mode_is_a_tunable_changed_with_its_actor_and_reason(gw: Gateway) -> None:
    admin = gw.auth(Role.ADMIN)
    refused = await gw.http.put(
        "/v1/admin/ooda/mode", json={"mode": "fast", "reason": "r"}, headers=admin
    )
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["body", "mode"]
    for mode in ("advise", "auto"):
        body = {"mode": mode, "reason": f"try {mode}"}
        changed = await gw.http.put("/v1/admin/ooda/mode", json=body, headers=admin)
        assert changed.status_code == 200, changed.text
        assert (changed.json()["mode"], changed.json()["reason"]) == (mode, f"try {mode}")
        setting = (await gw.http.get("/v1/admin/config/ooda.mode", headers=admin)).json()
        assert (setting["value"], setting["source"]) == (mode, "operator")

"""/v1/admin/config: every tunable with its effective value, a change with its actor and
reason (validated by the control service before it reaches the log), and each key's history."""

from __future__ import annotations

import pytest

from services.gateway.keys import Role
from tests.integration.gateway.conftest import Gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

KEY = "inference.batch.max_wait_ms"


async def test_a_change_is_applied_with_its_actor_and_kept_in_the_history(gw: Gateway) -> None:
    admin = gw.auth(Role.ADMIN)
    before = (await gw.http.get(f"/v1/admin/config/{KEY}", headers=admin)).json()
    changed = await gw.http.put(
        f"/v1/admin/config/{KEY}", json={"value": 250, "reason": "slow clients"}, headers=admin
    )
    assert changed.status_code == 200, changed.text
    setting = changed.json()
    key_id = gw.keys[("acme", Role.ADMIN)].split("_")[1]
    assert (setting["value"], setting["source"], setting["reason"]) == (
        "250",
        "operator",
        "slow clients",
    )
    assert setting["actor"] == f"user:{key_id}"
    assert (setting["risk"], setting["owner"], setting["autonomous"]) == ("low", "inference", True)

    listed = (await gw.http.get("/v1/admin/config", headers=admin)).json()
    assert {s["key"]: s["value"] for s in listed}[KEY] == "250"
    [change, *_] = (await gw.http.get(f"/v1/admin/config/{KEY}/history", headers=admin)).json()
    assert (change["old_value"], change["new_value"]) == (before["value"], "250")
    assert change["actor"] == f"user:{key_id}" and change["event_id"]


@pytest.mark.parametrize(
    ("key", "body", "status", "detail"),
    [
        ("no.such.knob", {"value": 1, "reason": "r"}, 404, "no tunable 'no.such.knob'"),
        (KEY, {"value": 5000, "reason": "r"}, 422, "at most 1000"),
        (KEY, {"value": "soon", "reason": "r"}, 422, "is a number"),
        (KEY, {"value": 5, "reason": "   "}, 422, "needs a reason"),
    ],
)
async def test_a_bad_change_is_a_problem_and_never_reaches_the_log(
    gw: Gateway, key: str, body: dict[str, object], status: int, detail: str
) -> None:
    admin = gw.auth(Role.ADMIN)
    before = (await gw.http.get(f"/v1/admin/config/{KEY}/history", headers=admin)).json()
    reply = await gw.http.put(f"/v1/admin/config/{key}", json=body, headers=admin)
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"] == "application/problem+json"
    assert detail in reply.json()["detail"]
    after = (await gw.http.get(f"/v1/admin/config/{KEY}/history", headers=admin)).json()
    assert after == before


async def test_only_an_admin_sees_or_changes_the_configuration(gw: Gateway) -> None:
    writer = gw.auth(Role.WRITER)
    assert (await gw.http.get("/v1/admin/config", headers=writer)).status_code == 403
    put = await gw.http.put(
        f"/v1/admin/config/{KEY}", json={"value": 1, "reason": "r"}, headers=writer
    )
    assert put.status_code == 403


async def test_a_json_integer_sets_an_integer_knob(gw: Gateway) -> None:
    """A JSON 10 is the integer 10, never "10.0" (which an integer knob refuses)."""
    key = "ooda.min_baseline_samples"
    changed = await gw.http.put(
        f"/v1/admin/config/{key}",
        json={"value": 10, "reason": "judge sooner"},
        headers=gw.auth(Role.ADMIN),
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["value"] == "10"

"""The loop on the real platform: the real inference service under steady Embed load, the
control service, the five stage services, telemetry every second. An operator slows Embed
down by hand; the loop notices, proposes the revert as a pending decision (the knob is the
operator's for an hour), an admin approves it, and the loop proves p95 came back. The learn
stage is killed while it judges and a new one finishes the cycle."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.topics import DOMAIN_TOPICS, dlq_topic
from hartonomous.postgres import create_pool
from hartonomous.runtime.windows import TelemetryEmitter
from hartonomous.settings import Settings
from services.control.service import ControlService
from services.gateway.keys import Role
from services.gateway.service import GatewayService
from services.gateway.store import KeyStore
from services.inference.models.minilm import MiniLM
from services.inference.service import InferenceService, WarmupPlan
from services.inference.tunables import MAX_WAIT_MS
from services.ooda.act.service import ActService
from services.ooda.decide.service import DecideService
from services.ooda.learn.service import LearnService
from services.ooda.observe.service import ObserveService
from services.ooda.orient.service import OrientService
from tests.support import harness
from tests.support.ooda_load import embed_load, until


async def dead_letters(event_log: EmbeddedEventLog) -> list[str]:
    """What any consumer dead-lettered, with its error."""
    return [
        f"{r.headers['dlq_group']} {r.headers['dlq_error']} {r.headers['dlq_trace']}"
        for topic in DOMAIN_TOPICS
        async for r in event_log.replay(dlq_topic(topic), from_offset=0)
    ]


async def story(http: httpx.AsyncClient) -> str:
    """Every cycle's explanation, oldest first: what a failed wait prints."""
    reply = await http.get("/v1/ooda/cycles", params={"limit": 100})
    return "\n".join(f"[{c['status']}] {c['explanation']}" for c in reversed(reply.json()))


async def admin_client(gateway: GatewayService, pg_url: str) -> tuple[httpx.AsyncClient, str]:
    """An HTTP client with a fresh admin key for the gateway, and the key's id."""
    pool = await create_pool(pg_url, max_size=1)
    try:
        store = KeyStore(pool)
        issued = await store.issue_key(await store.create_tenant("ops"), Role.ADMIN)
    finally:
        await pool.close()
    headers = {"Authorization": f"Bearer {issued.secret_key}"}
    client = httpx.AsyncClient(base_url=gateway.url, headers=headers, timeout=30)
    return client, issued.secret_key.split("_")[1]


WARM_UP_S = 10
BASELINE_SAMPLES = 20
BASELINE_S = 30  # 20 one-second windows make the detector's first baseline, and some spare


async def test_an_operator_s_slowdown_is_found_proposed_approved_and_proven(
    model: MiniLM, pg_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data", http_port=0)
    gateway = GatewayService()
    platform = (
        InferenceService(model=model, warmup=WarmupPlan(max_rows=0, cache=False), generation=None),
        ControlService(),
        ObserveService(),
        OrientService(),
        DecideService(),
        ActService(),
        gateway,
    )
    # The loop only watches while the load warms up and its baselines form (a wobble then is
    # no change of the operator's), and is switched to auto over REST before the slowdown.
    # One-second windows: a 20-sample first baseline is 20 s of history, not five minutes.
    tunables = {
        "telemetry.interval_s": "1",
        "ooda.evaluation_s": "15",
        "ooda.mode": "off",
        "ooda.min_baseline_samples": str(BASELINE_SAMPLES),
    }
    async with harness.running(*platform, pg_url=pg_url, settings=settings, tunables=tunables) as h:
        learn = await harness.start(LearnService(), event_log=h.event_log, pg_url=pg_url)
        http, key_id = await admin_client(gateway, pg_url)
        operator = f"user:{key_id}"
        stop = asyncio.Event()
        load = asyncio.create_task(embed_load(h.channel, stop))
        await asyncio.sleep(WARM_UP_S)  # the model compiles its shapes before anything is timed
        h.ctx.telemetry.close(h.ctx.config.held())
        emitter = TelemetryEmitter(h.ctx.telemetry, h.ctx.publisher("telemetry"), h.ctx.config)
        emitting = asyncio.create_task(emitter.run())
        try:
            await asyncio.sleep(BASELINE_S)
            auto = await http.put("/v1/admin/ooda/mode", json={"mode": "auto", "reason": "go"})
            assert auto.status_code == 200, auto.text
            changed = await http.put(
                f"/v1/admin/config/{MAX_WAIT_MS}",
                json={"value": 250, "reason": "try bigger batches"},
            )
            assert changed.status_code == 200, changed.text

            async def pending() -> dict[str, Any] | None:
                reply = await http.get("/v1/ooda/decisions", params={"status": "pending"})
                return next((d for d in reply.json() if d["knob"] == MAX_WAIT_MS), None)

            try:
                decision = await until(pending, timeout=60)
            finally:
                assert await dead_letters(h.event_log) == []
                print(await story(http))
            assert (decision["playbook"], decision["from_value"], decision["to_value"]) == (
                "restore-batching",
                "250",
                "5",
            )
            assert operator in decision["reason"] and "latency_p95_ms" in decision["evidence"]
            approve = f"/v1/admin/ooda/decisions/{decision['decision_id']}/approve"
            approved = await http.post(approve, json={"reason": "go back"})
            assert approved.status_code == 200, approved.text
            assert (approved.json()["status"], approved.json()["resolved_by"]) == (
                "approved",
                operator,
            )
            again = await http.post(approve, json={"reason": "twice"})
            assert again.status_code == 409, again.text
            assert "approved" in again.json()["detail"]
            # At once, though the cycle store (a projection of the log) may not have it yet.
            still = await http.get("/v1/ooda/decisions", params={"status": "pending"})
            assert decision["decision_id"] not in [d["decision_id"] for d in still.json()]

            async def cycle_in(*statuses: str) -> dict[str, Any] | None:
                found = (await http.get(f"/v1/ooda/cycles/{decision['cycle_id']}")).json()
                return found if found["status"] in statuses else None

            await until(lambda: cycle_in("evaluating"), timeout=30)
            # Kill learn while it judges; a new one, rebuilt from the log, finishes the cycle.
            await learn.stop()
            learn = await harness.start(LearnService(), event_log=h.event_log, pg_url=pg_url)
            done = await until(lambda: cycle_in("improved", "no change", "harmful"), 60)
            explained = (await http.get(f"/v1/ooda/cycles/{done['cycle_id']}/explain")).json()
            [setting] = [
                s for s in (await http.get("/v1/admin/config")).json() if s["key"] == MAX_WAIT_MS
            ]
        finally:
            stop.set()
            await load
            emitting.cancel()
            await learn.stop()
            await http.aclose()
        assert done["status"] == "improved", done["explanation"]
        assert [e["type"] for e in done["events"]][:4] == [
            "ObservationMade",
            "HypothesesProposed",
            "DecisionMade",
            "DecisionResolved",
        ]
        assert explained["explanation"] == done["explanation"]
        assert f"approved by {operator}" in done["explanation"]
        assert "prior of playbook restore-batching is now Beta(4,1)" in done["explanation"]
        assert setting["value"] == "5" and setting["actor"] == f"ooda:{decision['decision_id']}"

"""The loop on the real platform: the real inference service under steady Embed load, the
control service, the five stage services, telemetry every second. An operator slows Embed
down by hand; the loop notices, proposes the revert as a pending decision (the knob is the
operator's for an hour), an admin approves it, and the loop proves p95 came back. The learn
stage is killed while it judges and a new one finishes the cycle."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.topics import DOMAIN_TOPICS, dlq_topic
from hartonomous.runtime.windows import TelemetryEmitter
from hartonomous.settings import Settings
from hartonomous.v1 import control_pb2, control_pb2_grpc, ooda_pb2, ooda_pb2_grpc
from services.control.service import ControlService
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


async def story(ooda: ooda_pb2_grpc.OodaStub) -> str:
    """Every cycle's explanation, oldest first: what a failed wait prints."""
    reply = await ooda.ListCycles(ooda_pb2.ListCyclesRequest(limit=100))
    return "\n".join(f"[{c.status}] {c.explanation}" for c in reversed(reply.cycles))


WARM_UP_S = 10
BASELINE_S = 75  # 60 one-second windows make the detector's first baseline, and some spare


async def test_an_operator_s_slowdown_is_found_proposed_approved_and_proven(
    model: MiniLM, pg_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path / "data")
    platform = (
        InferenceService(model=model, warmup=WarmupPlan(max_rows=0, cache=False)),
        ControlService(),
        ObserveService(),
        OrientService(),
        DecideService(),
        ActService(),
    )
    tunables = {"telemetry.interval_s": "1", "ooda.evaluation_s": "15"}
    async with harness.running(*platform, pg_url=pg_url, settings=settings, tunables=tunables) as h:
        learn = await harness.start(LearnService(), event_log=h.event_log, pg_url=pg_url)
        stop = asyncio.Event()
        load = asyncio.create_task(embed_load(h.channel, stop))
        await asyncio.sleep(WARM_UP_S)  # the model compiles its shapes before anything is timed
        h.ctx.telemetry.close(h.ctx.config.held())
        emitter = TelemetryEmitter(h.ctx.telemetry, h.ctx.publisher("telemetry"), h.ctx.config)
        emitting = asyncio.create_task(emitter.run())
        control = control_pb2_grpc.ControlStub(h.channel)  # type: ignore[no-untyped-call]
        ooda = ooda_pb2_grpc.OodaStub(h.channel)  # type: ignore[no-untyped-call]
        try:
            await asyncio.sleep(BASELINE_S)
            await control.SetConfig(
                control_pb2.SetConfigRequest(
                    key=MAX_WAIT_MS, value="250", reason="try bigger batches", actor="user:k1"
                )
            )

            async def pending() -> ooda_pb2.Decision | None:
                reply = await ooda.ListDecisions(ooda_pb2.ListDecisionsRequest(status="pending"))
                return next((d for d in reply.decisions if d.knob == MAX_WAIT_MS), None)

            try:
                decision = await until(pending, timeout=60)
            finally:
                assert await dead_letters(h.event_log) == []
                print(await story(ooda))
            assert (decision.playbook, decision.from_value, decision.to_value) == (
                "restore-batching",
                "250",
                "5",
            )
            assert "user:k1" in decision.reason and "latency_p95_ms" in decision.evidence
            approved = await ooda.Approve(
                ooda_pb2.ResolveRequest(
                    decision_id=decision.decision_id, actor="user:k1", reason="go back"
                )
            )
            assert approved.status == "approved"

            async def cycle_in(*statuses: str) -> ooda_pb2.Cycle | None:
                found = await ooda.GetCycle(ooda_pb2.GetCycleRequest(cycle_id=decision.cycle_id))
                return found if found.status in statuses else None

            await until(lambda: cycle_in("evaluating"), timeout=30)
            # Kill learn while it judges; a new one, rebuilt from the log, finishes the cycle.
            await learn.stop()
            learn = await harness.start(LearnService(), event_log=h.event_log, pg_url=pg_url)
            done = await until(lambda: cycle_in("improved", "no change", "harmful"), 60)
        finally:
            stop.set()
            await load
            emitting.cancel()
            await learn.stop()
        assert done.status == "improved", done.explanation
        assert "approved by user:k1" in done.explanation
        assert "prior of playbook restore-batching is now Beta(4,1)" in done.explanation
        [setting] = (
            await control.GetConfig(control_pb2.GetConfigRequest(key=MAX_WAIT_MS))
        ).settings
        assert setting.value == "5" and setting.actor == f"ooda:{decision.decision_id}"

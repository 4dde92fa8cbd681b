"""The autonomous loop end to end, on the real platform (`hartonomous up`), through the REST
gateway, under steady load (4 clients calling POST /v1/embeddings back to back):

1. held: an admin sets `inference.batch.max_wait_ms` to 250; the loop detects the regression,
   proposes the revert as a pending decision (the knob is the operator's for an hour); the
   bench approves it as soon as it is listed; the loop applies it and proves p95 is back.
2. auto: the same with `ooda.manual_hold_s` 0: the loop restores the good value by itself.
3. harmful: a playbook declared here only (EXPERIMENT_PLAYBOOKS, loaded by the platform through
   HARTONOMOUS_OODA_PLAYBOOKS) answers slower searches (2 more clients, whose queries grow
   long) by waiting longer for Embed batches; learn finds it harmful (Embed p95, its
   guardrail, regresses) and the change is rolled back by itself. (It watches searches, which
   only this scenario makes, so that it stays out of the other three.)
4. steady: STEADY_S of unchanged load: no action.

Telemetry windows are 1 s (not the default 5 s) and every playbook is judged after 30 s, so
the experiment takes about 20 minutes. The loop is off (observing only) while the load warms
up and its baselines form, as on a platform that has been serving a while, and auto from then
on; every cycle stays readable through /v1/ooda/cycles and its explanation. Times are from the moment of the disturbance to the event that shows it."""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import httpx

from bench._platform import REPO, Platform, platform
from bench.common import RESULTS, Metric, write
from services.inference.tunables import MAX_WAIT_MS
from services.ooda.domain.playbooks import EMBED, Direction, Playbook, SetTo, Signal

T = TypeVar("T")
CLIENTS = 4
BASELINE_S = 90.0  # the detector's first baseline: 60 windows of 1 s, and spare
SETTLE_S = 75.0  # a fresh baseline after a change was detected
STEADY_S = float(os.environ.get("OODA_BENCH_STEADY_S", "600"))
SHORT = "a steady stream of short questions about the platform"
LONG = " ".join(["a much longer question about the ledger, its atoms and their provenance"] * 20)
SEARCH = "POST /v1/search"
VERDICTS = ("improved", "no change", "harmful", "inconclusive", "rolled back", "failed")
SETTINGS = {
    "ooda.mode": "off",
    "telemetry.interval_s": "1",
    "ooda.evaluation_s": "30",
    "ooda.cooldown_s": "60",
}
LOG = RESULTS / "ooda-platform.log"

EXPERIMENT_PLAYBOOKS = (
    Playbook(
        name="wait-longer-for-long-texts",
        description="A wrong idea on purpose: when searches slow down, wait longer for batches",
        trigger=Signal("latency_p50_ms", Direction.UP, {"operation": SEARCH}, min_effect=0.5),
        knob=MAX_WAIT_MS,
        change=SetTo("400"),
        expect=Signal("latency_p50_ms", Direction.DOWN, {"operation": SEARCH}),
        guardrails=(Signal("latency_p95_ms", Direction.UP, {"operation": EMBED}, 0.3),),
        prior=(5.0, 1.0),
        cooldown_s=60.0,
    ),
)


class Load:
    """`clients` clients calling POST /v1/{route} back to back with `text` (search queries
    are numbered: never repeated, so the query cache has nothing to do)."""

    def __init__(self, http: httpx.AsyncClient, route: str, clients: int) -> None:
        self.http = http
        self.route = route
        self.text = SHORT
        self.calls = self.errors = 0
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(self._client()) for _ in range(clients)]

    async def _client(self) -> None:
        while not self._stop.is_set():
            if self.route == "search":
                body: dict[str, Any] = {"query": f"{self.text} {self.calls}", "mode": "dense"}
            else:
                body = {"input": self.text, "model": "all-MiniLM-L6-v2"}
            reply = await self.http.post(f"/v1/{self.route}", json=body, timeout=60)
            self.calls += 1
            self.errors += reply.status_code != 200

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        print(f"{self.route}: {self.calls} calls, {self.errors} errors", file=sys.stderr)


def say(what: str) -> None:
    print(f"{datetime.now(UTC):%H:%M:%S} {what}", file=sys.stderr, flush=True)


async def until(probe: Callable[[], Awaitable[T | None]], timeout: float, what: str) -> T:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = await probe()
        if found is not None:
            return found
        await asyncio.sleep(0.5)
    raise SystemExit(f"no {what} in {timeout:.0f} s (the platform's log: {LOG})")


async def set_config(http: httpx.AsyncClient, key: str, value: str) -> datetime:
    reply = await http.put(f"/v1/admin/config/{key}", json={"value": value, "reason": "bench"})
    reply.raise_for_status()
    return datetime.now(UTC)


async def cycle_after(
    http: httpx.AsyncClient, since: datetime, knob: str, playbook: str | None = None
) -> dict[str, Any] | None:
    """The first cycle since `since` in which the loop decided about `knob`."""
    reply = await http.get("/v1/ooda/cycles", params={"acted_only": "true", "limit": 50})
    reply.raise_for_status()
    for cycle in reversed(reply.json()):
        observed = datetime.fromisoformat(cycle["observed_at"])
        if observed >= since and cycle["knob"] == knob and playbook in (None, cycle["playbook"]):
            return dict(cycle)
    return None


async def finished(http: httpx.AsyncClient, cycle_id: str) -> dict[str, Any] | None:
    reply = await http.get(f"/v1/ooda/cycles/{cycle_id}")
    reply.raise_for_status()
    cycle: dict[str, Any] = reply.json()
    return cycle if cycle["status"] in VERDICTS else None


def events(cycle: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [e["event"] for e in cycle["events"] if e["type"] == kind]


def at(event: dict[str, Any], field: str) -> datetime:
    return datetime.fromisoformat(event[field])


async def explain(http: httpx.AsyncClient, cycle_id: str) -> str:
    reply = await http.get(f"/v1/ooda/cycles/{cycle_id}/explain")
    reply.raise_for_status()
    return str(reply.json()["explanation"])


async def revert(http: httpx.AsyncClient, label: str, approve: bool) -> list[Metric]:
    """The operator's slowdown and the loop's revert: time to detect, to recover, and p95."""
    say(f"{label}: {MAX_WAIT_MS} set to 250 by an admin")
    since = await set_config(http, MAX_WAIT_MS, "250")
    found = await until(lambda: cycle_after(http, since, MAX_WAIT_MS), 180, f"{label} cycle")
    if approve:
        pending = await until(
            lambda: _pending(http, found["cycle_id"]), 60, f"{label} pending decision"
        )
        reply = await http.post(
            f"/v1/admin/ooda/decisions/{pending}/approve", json={"reason": "bench approves"}
        )
        reply.raise_for_status()
    cycle = await until(lambda: finished(http, found["cycle_id"]), 300, f"{label} outcome")
    print(f"{label}: {await explain(http, cycle['cycle_id'])}", file=sys.stderr)
    [observed] = events(cycle, "ObservationMade")
    confirmed = events(cycle, "ActionConfirmed")
    [outcome] = events(cycle, "OutcomeEvaluated")
    if outcome["verdict"] != "improved" or not confirmed:
        raise SystemExit(f"{label}: the revert was not proven: {cycle['status']}")
    back = outcome["after_median"] / outcome["baseline"]
    return [
        Metric(
            f"{label}: time to detect",
            "s",
            (at(observed, "observed_at") - since).total_seconds(),
            higher_is_better=False,
        ),
        Metric(
            f"{label}: time to recover (restore confirmed)",
            "s",
            (at(confirmed[0], "confirmed_at") - since).total_seconds(),
            higher_is_better=False,
        ),
        Metric(f"{label}: p95 after / baseline", "x", back, higher_is_better=False),
    ]


async def _pending(http: httpx.AsyncClient, cycle_id: str) -> str | None:
    reply = await http.get("/v1/ooda/decisions", params={"status": "pending"})
    reply.raise_for_status()
    return next((d["decision_id"] for d in reply.json() if d["cycle_id"] == cycle_id), None)


async def harmful(http: httpx.AsyncClient) -> list[Metric]:
    say(f"harmful: 2 search clients, short queries while their baseline forms ({BASELINE_S:.0f} s)")
    searches = Load(http, "search", 2)
    try:
        await asyncio.sleep(BASELINE_S)
        say("harmful: the queries grow long")
        since = datetime.now(UTC)
        searches.text = LONG
        return await _rolled_back(http, since)
    finally:
        await searches.stop()


async def _rolled_back(http: httpx.AsyncClient, since: datetime) -> list[Metric]:
    playbook = EXPERIMENT_PLAYBOOKS[0].name
    found = await until(
        lambda: cycle_after(http, since, MAX_WAIT_MS, playbook), 180, "harmful cycle"
    )
    cycle = await until(lambda: finished(http, found["cycle_id"]), 300, "harmful outcome")
    print(f"harmful: {await explain(http, cycle['cycle_id'])}", file=sys.stderr)
    started = events(cycle, "ActionStarted")
    if cycle["status"] != "rolled back" or len(started) != 2:
        raise SystemExit(f"harmful: not rolled back: {cycle['status']}")
    change, rollback = started
    confirmed = {c["action_id"]: c for c in events(cycle, "ActionConfirmed")}
    rolled = at(confirmed[rollback["action_id"]], "confirmed_at")
    return [
        Metric(
            "harmful: time to rollback (from the change)",
            "s",
            (rolled - at(change, "started_at")).total_seconds(),
            higher_is_better=False,
        ),
    ]


async def steady(http: httpx.AsyncClient) -> list[Metric]:
    since = datetime.now(UTC)
    await asyncio.sleep(STEADY_S)
    reply = await http.get("/v1/ooda/cycles", params={"acted_only": "true", "limit": 200})
    reply.raise_for_status()
    acted = [
        c
        for c in reply.json()
        if datetime.fromisoformat(c["observed_at"]) >= since
        and c["status"] not in ("declined", "expired", "rejected")
    ]
    for cycle in acted:
        print(f"steady: unexpected: {await explain(http, cycle['cycle_id'])}", file=sys.stderr)
    return [
        Metric(
            f"steady: actions in {STEADY_S / 60:.0f} min",
            "actions",
            len(acted),
            higher_is_better=False,
        )
    ]


async def experiment(target: Platform) -> list[Metric]:
    headers = {"Authorization": f"Bearer {target.key}"}
    async with httpx.AsyncClient(base_url=target.url, headers=headers, timeout=30) as http:
        for key, value in SETTINGS.items():
            await set_config(http, key, value)
        load = Load(http, "embeddings", CLIENTS)
        try:
            say(f"load on, the loop off while its baselines form ({BASELINE_S:.0f} s)")
            await asyncio.sleep(BASELINE_S)
            await set_config(http, "ooda.mode", "auto")
            metrics = await revert(http, "held", approve=True)
            await asyncio.sleep(SETTLE_S)
            await set_config(http, "ooda.manual_hold_s", "0")
            await asyncio.sleep(SETTLE_S)
            metrics += await revert(http, "auto", approve=False)
            metrics += await harmful(http)
            await asyncio.sleep(SETTLE_S)
            say(f"steady: {STEADY_S:.0f} s of unchanged load")
            metrics += await steady(http)
        finally:
            await load.stop()
        return metrics


def main() -> None:
    env = {
        "HARTONOMOUS_OODA_PLAYBOOKS": "bench.ooda:EXPERIMENT_PLAYBOOKS",
        "PYTHONPATH": str(REPO),
        "HARTONOMOUS_GATEWAY_RATE_PER_SECOND": "1000000",
        "HARTONOMOUS_GATEWAY_RATE_BURST": "1000000",
    }
    LOG.parent.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(prefix="bench-ooda-") as scratch,
        platform(Path(scratch) / "data", env, role="admin", log=LOG) as target,
    ):
        metrics = asyncio.run(experiment(target))
    print(f"wrote {write('ooda', metrics)}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""A projection SIGKILLed between committing a batch and committing the group's offsets, and
restarted, applies every event exactly once in effect: the kernel's smallest projection, the
billing ledger and the provenance graph, on both logs."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import asyncpg
import pytest

from hartonomous.eventlog.port import EventLog, TopicSpec
from hartonomous.events import AvroCodec, decode_event
from hartonomous.events.payloads import UsageRecorded
from services.provenance.audit import rebuild, scratch_store
from services.provenance.graph.embedded import EmbeddedGraphStore
from tests.support.events import usage_record

REPO = Path(__file__).resolve().parents[3]
EVENTS = 300
CODEC = AvroCodec()


def start_projection(
    kind: str, pg_url: str, kafka: str | None, *extra: str
) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.support.projection_process", kind, "--postgres-url", pg_url]
    cmd += list(extra)
    if kafka:
        cmd += ["--kafka-bootstrap", kafka]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)


async def expected_totals(eventlog: EventLog, topic: str) -> dict[str, Decimal]:
    """The per-tenant totals a full replay of the log gives."""
    expected: dict[str, Decimal] = defaultdict(Decimal)
    async for record in eventlog.replay(topic, from_offset=0):
        event = decode_event(CODEC, record)
        assert isinstance(event.payload, UsageRecorded)
        expected[event.payload.tenant_id] += event.payload.quantity
    return dict(expected)


async def kill_mid_stream_and_restart(kind: str, pg_url: str, kafka: str | None, *args: str) -> int:
    """Kill the projection right after a commit once it has applied some (before the group's
    offsets follow), restart it until it has applied all; returns how many re-delivered
    records the restarted one skipped."""
    victim = start_projection(kind, pg_url, kafka, *args, "--delay", "0.2")
    try:
        assert victim.stdout is not None
        applied = 0
        while applied < 60:
            line = await asyncio.wait_for(asyncio.to_thread(victim.stdout.readline), 90)
            assert line, "the projection exited before it was killed"
            if line.startswith("applied "):
                applied = int(line.split()[1])
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        assert applied < EVENTS
    finally:
        if victim.poll() is None:
            victim.kill()
    survivor = start_projection(kind, pg_url, kafka, *args, "--until", str(EVENTS))
    out, _ = await asyncio.to_thread(survivor.communicate, timeout=180)
    assert survivor.returncode == 0, out
    return int(out.strip().splitlines()[-1].split()[-1])


@pytest.fixture
async def topic(eventlog: EventLog) -> str:
    """A topic of 3 partitions holding EVENTS usage records of 5 tenants."""
    name = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(name, 3), TopicSpec(f"{name}.dlq", 1)])
    tenants = [f"tenant-{i}" for i in range(5)]
    quantities = [Decimal(i) / 7 + Decimal("0.001") for i in range(EVENTS)]
    await eventlog.append(
        [usage_record(CODEC, name, tenants[i % 5], q) for i, q in enumerate(quantities)]
    )
    return name


@pytest.fixture
async def db(pg_url: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=1)
    assert pool is not None
    return pool


async def test_the_smallest_projection_applies_each_event_once(
    eventlog: EventLog, log_settings: str | None, pg_url: str, topic: str, db: asyncpg.Pool
) -> None:
    skipped = await kill_mid_stream_and_restart("totals", pg_url, log_settings, "--topic", topic)
    # Records applied before the kill but not committed were delivered again and skipped.
    assert skipped > 0
    rows = await db.fetch("select tenant_id, quantity, events from usage_projection.totals")
    assert sum(r["events"] for r in rows) == EVENTS
    assert {r["tenant_id"]: r["quantity"] for r in rows} == await expected_totals(eventlog, topic)
    await db.close()


async def test_the_billing_ledger_applies_each_event_once(
    eventlog: EventLog, log_settings: str | None, pg_url: str, topic: str, db: asyncpg.Pool
) -> None:
    skipped = await kill_mid_stream_and_restart("billing", pg_url, log_settings, "--topic", topic)
    assert skipped > 0  # the inbox, not only the ledger's key, recognised re-deliveries
    rows = await db.fetch(
        "select tenant_id, sum(quantity) as q, count(*) as n from billing.ledger group by 1"
    )
    assert sum(r["n"] for r in rows) == EVENTS
    assert {r["tenant_id"]: r["q"] for r in rows} == await expected_totals(eventlog, topic)
    inbox = await db.fetch('select partition, "offset" from billing.inbox')
    ends = {partition: end for partition, end in (await eventlog.end_offsets(topic)).items() if end}
    assert {r["partition"]: r["offset"] + 1 for r in inbox} == ends
    await db.close()


async def test_the_provenance_graph_equals_a_replay_after_a_kill(
    eventlog: EventLog, log_settings: str | None, pg_url: str, topic: str, tmp_path: Path
) -> None:
    graph = tmp_path / "graph" / "provenance.lbug"
    args = ("--topic", topic, "--graph", str(graph))
    await kill_mid_stream_and_restart("provenance", pg_url, log_settings, *args)
    live = EmbeddedGraphStore(graph)
    await live.open()
    try:
        fingerprint = await live.fingerprint()
    finally:
        await live.close()
    ends = await eventlog.end_offsets(topic)
    assert fingerprint.positions == {(topic, p): end for p, end in ends.items() if end}
    async with scratch_store() as scratch:
        replayed = await rebuild(eventlog, CODEC, scratch, [topic])
        assert replayed.records == EVENTS and replayed.rejected == 0
        assert (await scratch.fingerprint()).digest == fingerprint.digest

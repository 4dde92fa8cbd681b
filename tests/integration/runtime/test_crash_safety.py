"""A consumer SIGKILLed mid-batch and restarted applies every event exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from decimal import Decimal
from pathlib import Path

import asyncpg

from hartonomous.eventlog.port import EventLog, TopicSpec
from hartonomous.events import AvroCodec, decode_event
from hartonomous.events.payloads import UsageRecorded
from tests.support.events import usage_record

REPO = Path(__file__).resolve().parents[3]
EVENTS = 300


def start_projection(
    pg_url: str, topic: str, kafka: str | None, *extra: str
) -> subprocess.Popen[str]:
    cmd = [sys.executable, "-m", "tests.support.usage_projection", "--postgres-url", pg_url]
    cmd += ["--topic", topic, *extra]
    if kafka:
        cmd += ["--kafka-bootstrap", kafka]
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, text=True)


async def test_sigkill_mid_batch_then_restart_applies_each_event_once(
    eventlog: EventLog, log_settings: str | None, pg_url: str
) -> None:
    codec = AvroCodec()
    topic = f"usage-{uuid.uuid4().hex[:8]}"
    await eventlog.ensure_topics([TopicSpec(topic, 3)])
    tenants = [f"tenant-{i}" for i in range(5)]
    await eventlog.append(
        [
            usage_record(codec, topic, tenants[i % 5], Decimal(i) / 7 + Decimal("0.001"))
            for i in range(EVENTS)
        ]
    )
    # The expected state, computed from a full replay of the log.
    expected: dict[str, Decimal] = defaultdict(Decimal)
    async for record in eventlog.replay(topic, from_offset=0):
        event = decode_event(codec, record)
        assert isinstance(event.payload, UsageRecorded)
        expected[event.payload.tenant_id] += event.payload.quantity

    pool = await asyncpg.create_pool(pg_url, min_size=1, max_size=1)
    assert pool is not None
    victim = start_projection(pg_url, topic, log_settings, "--delay", "0.2")
    try:
        deadline = time.monotonic() + 90
        applied = 0
        while applied < 60:
            assert victim.poll() is None, "the projection exited before it was killed"
            assert time.monotonic() < deadline, "the projection never got going"
            await asyncio.sleep(0.05)
            if await pool.fetchval("select to_regclass('usage_projection.totals')") is not None:
                applied = await pool.fetchval(
                    "select coalesce(sum(events), 0) from usage_projection.totals"
                )
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait()
        at_kill = await pool.fetchval("select sum(events) from usage_projection.totals")
        assert at_kill < EVENTS

        survivor = start_projection(pg_url, topic, log_settings, "--until", str(EVENTS))
        out, _ = await asyncio.to_thread(survivor.communicate, timeout=180)
        assert survivor.returncode == 0, out
        skipped = int(out.strip().splitlines()[-1].split()[-1])
        # Events applied before the kill but not committed were delivered again and skipped.
        assert skipped > 0, out

        rows = await pool.fetch("select tenant_id, quantity, events from usage_projection.totals")
        assert sum(r["events"] for r in rows) == EVENTS
        assert {r["tenant_id"]: r["quantity"] for r in rows} == dict(expected)
    finally:
        if victim.poll() is None:
            victim.kill()
        await pool.close()

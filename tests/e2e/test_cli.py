"""The CLI as an operator uses it: `up`, `topics`, `replay`, and a clean drain on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
from decimal import Decimal
from pathlib import Path

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.events import AvroCodec
from hartonomous.postgres import embedded_postgres_url
from tests.support.events import usage_record
from tests.support.platform import CLI, cli, free_port, http_get, start_platform, wait_serving


async def test_up_provisions_topics_replay_decodes_and_sigterm_drains(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port, metrics_port = free_port(), free_port()
    # Nothing here generates: the process skips loading and warming SmolLM2.
    no_generation = {"HARTONOMOUS_GENERATION_SLOTS": "0"}
    platform = start_platform(data_dir, port, metrics_port, env=no_generation)
    try:
        wait_serving(port)
        exposition = await asyncio.to_thread(http_get, f"http://127.0.0.1:{metrics_port}/metrics")
        assert "hartonomous_events_handled_total" in exposition
        listed = cli("topics", "--json", data_dir=data_dir)
        assert listed.returncode == 0, listed.stderr
        topics = {row["topic"]: row for row in json.loads(listed.stdout)}
        assert topics["atoms"]["partitions"] == 6
        assert "usage.dlq" in topics

        # Append through the same embedded Postgres the platform runs on.
        event_log = EmbeddedEventLog(embedded_postgres_url(data_dir / "postgres"))
        await event_log.start()
        codec = AvroCodec()
        await event_log.append([usage_record(codec, "usage", "acme", Decimal("2.5"))])
        await event_log.close()

        replayed = cli("replay", "--topic", "usage", "--json", data_dir=data_dir)
        assert replayed.returncode == 0, replayed.stderr
        # The platform meters its own first start too (the bundled models stored as atoms).
        lines = [json.loads(line) for line in replayed.stdout.strip().splitlines()]
        [event] = [e for e in lines if e["headers"]["produced_by"] == "tests"]
        assert event["event_type"] == "UsageRecorded"
        assert event["payload"]["tenant_id"] == "acme"
        assert Decimal(event["payload"]["quantity"]) == Decimal("2.5")
        assert event["headers"]["produced_by"] == "tests"
        assert event["offset"] >= 0

        human = cli(
            "replay", "--topic", "usage", "--from-time", "2000-01-01T00:00", data_dir=data_dir
        )
        assert "UsageRecorded" in human.stdout and " events" in human.stderr
    finally:
        platform.send_signal(signal.SIGTERM)
        _, stderr = platform.communicate(timeout=60)
    assert platform.returncode == 0, stderr
    messages = [json.loads(line)["msg"] for line in stderr.splitlines() if line.startswith("{")]
    # Work already under way (the first start's model ingest) may still log while draining.
    assert "draining" in messages and messages[-1] == "stopped"
    assert messages.index("draining") > messages.index("platform up")


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    result = cli("replay", "--topic", "usage", "--from-time", "yesterday", data_dir=tmp_path)
    assert result.returncode == 2
    assert "'yesterday' is not an ISO 8601 time" in result.stderr
    unknown = cli("serve", "no-such-service", data_dir=tmp_path)
    assert unknown.returncode != 0
    assert "unknown service" in unknown.stderr


def test_a_process_that_may_not_create_topics_runs_once_they_are_provisioned(
    tmp_path: Path,
) -> None:
    """HARTONOMOUS_TOPIC_PROVISIONING=require (a Kafka where services may not create topics):
    a process refuses to start, naming what is missing and how to provision it;
    `hartonomous topics --create` provisions them; then the same process serves."""
    data_dir = tmp_path / "data"
    require = {"HARTONOMOUS_TOPIC_PROVISIONING": "require"}
    port = free_port()
    serve = ("serve", "billing", "--grpc-port", str(port), "--metrics-port", "0")
    refused = cli(*serve, data_dir=data_dir, env=require)
    assert refused.returncode == 1
    assert "missing topics atoms, atoms.dlq, control" in refused.stderr
    assert "`hartonomous topics --create`" in refused.stderr and "Traceback" not in refused.stderr

    created = cli("topics", "--create", "--json", data_dir=data_dir)
    assert created.returncode == 0, created.stderr
    topics = {row["topic"]: row["partitions"] for row in json.loads(created.stdout)}
    assert topics["atoms"] == 6 and topics["atoms.dlq"] == 1 and len(topics) == 26

    billing = subprocess.Popen(
        [str(CLI), *serve, "--data-dir", str(data_dir)],
        env={**os.environ, **require},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_serving(port)
    finally:
        billing.send_signal(signal.SIGTERM)
        assert billing.wait(timeout=60) == 0

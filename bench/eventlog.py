"""Event log: append throughput (1 KiB payloads, one at a time and batched) and append->consume
latency, for the embedded and the Kafka adapters; beside them Kafka's own ProducerPerformance
(the class behind kafka-producer-perf-test) from the same jars against the same broker.

Runs are interleaved (ours, peer, ours, peer ...) and medians reported."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common import Metric, median, percentile, write
from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.kafka import KafkaEventLog
from hartonomous.eventlog.port import EventLog, Record, TopicSpec
from hartonomous.postgres import embedded_postgres_url

REPO = Path(__file__).resolve().parents[1]
KAFKA_SH = REPO / "deploy" / "local" / "kafka.sh"
PAYLOAD = os.urandom(1024)
REPS = 3
SINGLE = 500  # one-at-a-time appends per run
BATCHED = 50_000  # records per batched run
BATCH = 1_000
LATENCY_SAMPLES = 300


def records(topic: str, n: int) -> list[Record]:
    return [Record(topic, f"k{i % 64}".encode(), PAYLOAD) for i in range(n)]


async def new_topic(event_log: EventLog) -> str:
    topic = f"bench-{uuid.uuid4().hex[:8]}"
    await event_log.ensure_topics([TopicSpec(topic, 6)])
    return topic


async def single_rate(event_log: EventLog) -> float:
    topic = await new_topic(event_log)
    batch = records(topic, SINGLE)
    started = time.perf_counter()
    for record in batch:
        await event_log.append([record])
    return SINGLE / (time.perf_counter() - started)


async def batched_rate(event_log: EventLog) -> float:
    topic = await new_topic(event_log)
    batch = records(topic, BATCHED)
    started = time.perf_counter()
    for i in range(0, BATCHED, BATCH):
        await event_log.append(batch[i : i + BATCH])
    return BATCHED / (time.perf_counter() - started)


async def latencies(event_log: EventLog) -> list[float]:
    """Milliseconds from append() being called to the record reaching a group consumer."""
    topic = await new_topic(event_log)
    consumer = event_log.consumer(f"bench-{uuid.uuid4().hex[:6]}", [topic])
    sent: dict[bytes, float] = {}
    seen: list[float] = []
    await event_log.append([Record(topic, b"warm", b"warm")])
    while not await consumer.poll(timeout=1.0):  # joined and assigned
        pass

    async def receive() -> None:
        while len(seen) < LATENCY_SAMPLES:
            for r in await consumer.poll(timeout=1.0):
                if r.key in sent:
                    seen.append((time.perf_counter() - sent[r.key]) * 1000)

    receiver = asyncio.create_task(receive())
    for i in range(LATENCY_SAMPLES):
        key = f"lat{i}".encode()
        sent[key] = time.perf_counter()
        await event_log.append([Record(topic, key, PAYLOAD)])
        await asyncio.sleep(0.005)
    await asyncio.wait_for(receiver, 60)
    await consumer.close()
    return seen


def producer_perf(bootstrap: str, topic: str) -> float:
    """Kafka's own producer benchmark with the same settings as our producer."""
    libs = subprocess.run([str(KAFKA_SH), "perf-jars"], capture_output=True, text=True, check=True)
    classpath = libs.stdout.strip().splitlines()[-1] + "/*"
    out = subprocess.run(
        [
            "java", "-Xmx512m", "-cp", classpath, "org.apache.kafka.tools.ProducerPerformance",
            "--topic", topic, "--num-records", str(BATCHED), "--record-size", "1024",
            "--throughput", "-1", "--producer-props", f"bootstrap.servers={bootstrap}",
            "acks=all", "enable.idempotence=true", "compression.type=lz4", "linger.ms=5",
        ],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    match = re.findall(r"([\d.]+) records/sec", out.stdout)
    if not match:
        raise RuntimeError(f"unexpected ProducerPerformance output:\n{out.stdout}\n{out.stderr}")
    return float(match[-1])


async def interleave(runs: list[Callable[[], Awaitable[float]]]) -> list[list[float]]:
    results: list[list[float]] = [[] for _ in runs]
    for _ in range(REPS):
        for i, run in enumerate(runs):
            results[i].append(await run())
    return results


def kafka_up() -> str:
    done = subprocess.run([str(KAFKA_SH), "up"], capture_output=True, text=True, check=True)
    return done.stdout.splitlines()[-1]


async def measure(bootstrap: str) -> list[Metric]:
    pg_dir = Path(tempfile.mkdtemp(prefix="bench-eventlog-")) / "pgdata"
    embedded = EmbeddedEventLog(embedded_postgres_url(pg_dir, cleanup="delete"))
    kafka = KafkaEventLog(bootstrap, client_id="bench")
    await embedded.start()
    await kafka.start()
    metrics: list[Metric] = []
    try:

        async def peer() -> float:
            topic = await new_topic(kafka)
            return await asyncio.to_thread(producer_perf, bootstrap, topic)

        ours_kafka, theirs, ours_embedded = await interleave(
            [lambda: batched_rate(kafka), peer, lambda: batched_rate(embedded)]
        )
        single_kafka, single_embedded = await interleave(
            [lambda: single_rate(kafka), lambda: single_rate(embedded)]
        )
        peer_name = "kafka ProducerPerformance"
        metrics += [
            Metric(
                "kafka append batched (1 KiB)",
                "events/s",
                median(ours_kafka),
                peer_name,
                median(theirs),
            ),
            Metric("embedded append batched (1 KiB)", "events/s", median(ours_embedded)),
            Metric("kafka append one at a time", "events/s", median(single_kafka)),
            Metric("embedded append one at a time", "events/s", median(single_embedded)),
        ]
        for name, event_log in (("kafka", kafka), ("embedded", embedded)):
            lat = await latencies(event_log)
            metrics += [
                Metric(
                    f"{name} append->consume p50", "ms", percentile(lat, 50), higher_is_better=False
                ),
                Metric(
                    f"{name} append->consume p99", "ms", percentile(lat, 99), higher_is_better=False
                ),
            ]
    finally:
        await kafka.close()
        await embedded.close()
    return metrics


def main() -> None:
    path = write("eventlog", asyncio.run(measure(kafka_up())))
    print(f"wrote {path}", flush=True)

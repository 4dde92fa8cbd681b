"""Audit: the log is the source of truth, so the graph must equal a fresh replay of it.

`verify` rebuilds the graph from the log into a scratch ladybug file, exactly up to the
positions the live graph says it has applied, and compares the two fingerprints (counts per
label and type, and the canonical content hash). `as_of` rebuilds the graph from the records
the log accepted before a time."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from hartonomous.eventlog.port import EventLog, StoredRecord
from hartonomous.eventlog.topics import DOMAIN_TOPICS
from hartonomous.events import AvroCodec, EventDecodeError, decode_event
from hartonomous.runtime.projection import PoisonEvent
from services.provenance.canonical import Fingerprint, fingerprint, graph_json
from services.provenance.domain import Facts, Partition
from services.provenance.graph.embedded import EmbeddedGraphStore
from services.provenance.graph.port import GraphStore
from services.provenance.handlers import positions_after, project

REPLAY_BATCH = 1000
SCRATCH_BUFFER_POOL = 128 << 20


@dataclass
class Replayed:
    records: int = 0
    rejected: int = 0  # undecodable or unmappable: the live consumer dead-lettered these
    ahead: int = 0  # appended after the positions the live graph reports: not compared


@dataclass(frozen=True)
class AuditReport:
    live: Fingerprint
    rebuilt: Fingerprint
    replayed: Replayed

    @property
    def differences(self) -> list[str]:
        return self.live.differences(self.rebuilt)

    @property
    def ok(self) -> bool:
        return not self.differences


@contextlib.asynccontextmanager
async def scratch_store() -> AsyncIterator[GraphStore]:
    """An empty embedded graph in a temporary directory, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="hartonomous-audit-"))
    store = EmbeddedGraphStore(directory / "scratch.lbug", buffer_pool_bytes=SCRATCH_BUFFER_POOL)
    try:
        await store.open()
        yield store
    finally:
        await store.close()
        shutil.rmtree(directory, ignore_errors=True)


async def rebuild(
    event_log: EventLog,
    codec: AvroCodec,
    store: GraphStore,
    topics: Sequence[str],
    *,
    until: Mapping[Partition, int] | None = None,
    before: datetime | None = None,
) -> Replayed:
    """Project the topics' records into `store` as the live projector would: all of them, or
    those before the `until` positions, or those the log accepted before `before`."""
    replayed = Replayed()
    for topic in topics:
        batch: list[StoredRecord] = []
        async for record in event_log.replay(topic, to_time=before):
            if until is not None and record.offset >= until.get(
                (record.topic, record.partition), 0
            ):
                replayed.ahead += 1
                continue
            batch.append(record)
            if len(batch) >= REPLAY_BATCH:
                await _apply(store, codec, batch, replayed)
                batch = []
        if batch:
            await _apply(store, codec, batch, replayed)
    return replayed


async def _apply(
    store: GraphStore, codec: AvroCodec, records: list[StoredRecord], replayed: Replayed
) -> None:
    facts = Facts()
    for record in records:
        try:
            facts.extend(project(decode_event(codec, record)))
        except (EventDecodeError, PoisonEvent):
            replayed.rejected += 1
    replayed.records += len(records)
    await store.apply(facts, positions_after(records))


def audited_topics(topics: Collection[str] | None) -> list[str] | None:
    """None for the whole graph, else the chosen topics (checked against the topic list)."""
    if not topics or set(topics) >= set(DOMAIN_TOPICS):
        return None
    unknown = sorted(set(topics) - set(DOMAIN_TOPICS))
    if unknown:
        raise ValueError(f"unknown topics {unknown}; the domain topics are {list(DOMAIN_TOPICS)}")
    return sorted(set(topics))


async def verify(
    event_log: EventLog, codec: AvroCodec, live: Fingerprint, topics: Collection[str] | None = None
) -> AuditReport:
    """Compare the live fingerprint (taken with the same `topics`) with a rebuild."""
    chosen = audited_topics(topics)
    async with scratch_store() as scratch:
        replayed = await rebuild(
            event_log, codec, scratch, chosen or DOMAIN_TOPICS, until=live.positions
        )
        rebuilt = await scratch.fingerprint(chosen)
    return AuditReport(live, rebuilt, replayed)


@dataclass(frozen=True)
class Snapshot:
    fingerprint: Fingerprint
    replayed: Replayed
    graph: dict[str, list[dict[str, object]]] | None  # canonical.graph_json, when asked for


async def as_of(event_log: EventLog, codec: AvroCodec, before: datetime, *, dump: bool) -> Snapshot:
    """The graph as it was when the log had accepted exactly the records before `before`."""
    async with scratch_store() as scratch:
        replayed = await rebuild(event_log, codec, scratch, DOMAIN_TOPICS, before=before)
        nodes, edges, positions = await scratch.dump()
    graph = graph_json(nodes, edges) if dump else None
    return Snapshot(fingerprint(nodes, edges, positions), replayed, graph)

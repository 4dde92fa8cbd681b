"""The live projection: every domain topic, one consumer group, one graph write per batch.

Handlers only map each event to facts (handlers.project, no I/O) into a GraphBatch; when the
batch's transaction ends, its facts and the positions its records reach are written in one
graph transaction, and only then does the runner commit the group's offsets. A crash in
between re-delivers the batch, whose keyed merges change nothing the second time, so every
record counts as new (the claim only records positions)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

from prometheus_client import Histogram

from hartonomous.eventlog.port import Position, StoredRecord
from hartonomous.eventlog.topics import DOMAIN_TOPICS
from hartonomous.events import Event
from hartonomous.events.payloads import EVENT_PAYLOADS, Payload
from hartonomous.runtime.projection import Projection, RetryPolicy
from services.provenance.domain import Facts, Partition, advance
from services.provenance.graph.port import GraphStore, GraphStoreUnavailable
from services.provenance.handlers import project
from services.provenance.tunables import GROUP, MAX_BATCH

GRAPH_RETRY = RetryPolicy(attempts=8, max_backoff=10.0)
"""The graph may be briefly away (a Neo4j restart): a record is retried for about a minute."""

LAG = Histogram(
    "hartonomous_provenance_lag_seconds",
    "From a record's append to the log to its facts being in the provenance graph",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

Observer = Callable[[Sequence[StoredRecord]], None]


class GraphBatch:
    """One graph transaction's worth: the facts of its events and the positions they reach."""

    def __init__(self) -> None:
        self.facts = Facts()
        self.positions: dict[Partition, int] = {}
        self.records: list[StoredRecord] = []

    async def claim(self, records: Sequence[StoredRecord]) -> set[Position]:
        for record in records:
            advance(self.positions, record.topic, record.partition, record.offset + 1)
        self.records += records
        return {record.position for record in records}


async def collect(batch: GraphBatch, event: Event[Payload]) -> None:
    batch.facts.extend(project(event))


def graph_projection(
    store: GraphStore, *, observer: Observer | None = None
) -> Projection[GraphBatch]:
    """`observer` sees every batch's records once they are in the graph (benchmarks measure
    lag with it)."""

    @asynccontextmanager
    async def transaction() -> AsyncIterator[GraphBatch]:
        batch = GraphBatch()
        yield batch
        await store.apply(batch.facts, batch.positions)
        now = time.time()
        for record in batch.records:
            LAG.observe(max(0.0, now - record.timestamp.timestamp()))
        if observer is not None:
            observer(batch.records)

    return Projection(
        GROUP,
        DOMAIN_TOPICS,
        dict.fromkeys(EVENT_PAYLOADS.values(), collect),
        transaction,
        claim=GraphBatch.claim,
        transient=(GraphStoreUnavailable,),
        retry=GRAPH_RETRY,
        max_batch=MAX_BATCH,
    )

"""The live projection: every domain topic, one consumer group, one graph write per batch.

The loop's handler only maps each event to facts (handlers.project, no I/O); when the loop has
handled or dead-lettered every record of a batch, the facts and the positions they cover are
written in one transaction, and only then does the loop commit its offsets. A crash in between
re-delivers the batch, whose keyed merges change nothing the second time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from prometheus_client import Histogram

from hartonomous.eventlog.port import EventLog, StoredRecord
from hartonomous.eventlog.topics import DOMAIN_TOPICS
from hartonomous.events import AvroCodec, Event
from hartonomous.runtime.consumer import ConsumerLoop, RetryPolicy
from services.provenance.domain import Facts
from services.provenance.graph.port import GraphStore, GraphStoreError
from services.provenance.handlers import positions_after, project

log = logging.getLogger(__name__)

GROUP = "provenance"

LAG = Histogram(
    "hartonomous_provenance_lag_seconds",
    "From a record's append to the log to its facts being in the provenance graph",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)

Observer = Callable[[Sequence[StoredRecord]], None]


class GraphProjector(ConsumerLoop):
    def __init__(
        self,
        log_: EventLog,
        codec: AvroCodec,
        store: GraphStore,
        *,
        max_batch: int = 500,
        write_retry: RetryPolicy | None = None,
        observer: Observer | None = None,
    ) -> None:
        super().__init__(log_, codec, GROUP, DOMAIN_TOPICS, self._collect, max_batch=max_batch)
        self._store = store
        self._write_retry = write_retry or RetryPolicy(attempts=8, max_backoff=10.0)
        self._observer = observer
        self._pending = Facts()

    async def _collect(self, event: Event, record: StoredRecord) -> None:
        self._pending.extend(project(event, record))

    async def handle_batch(self, records: Sequence[StoredRecord]) -> None:
        self._pending = Facts()
        await super().handle_batch(records)
        await self._write(self._pending, records)
        now = time.time()
        for record in records:
            LAG.observe(max(0.0, now - record.timestamp.timestamp()))
        if self._observer is not None:
            self._observer(records)

    async def _write(self, facts: Facts, records: Sequence[StoredRecord]) -> None:
        """The graph may be briefly away (a Neo4j restart): retry before giving up the loop."""
        positions = positions_after(records)
        for attempt in range(self._write_retry.attempts):
            try:
                await self._store.apply(facts, positions)
                return
            except GraphStoreError as exc:
                if attempt + 1 == self._write_retry.attempts:
                    raise
                log.warning("graph write failed, retrying", extra={"error": str(exc)})
                await asyncio.sleep(self._write_retry.delay(attempt))

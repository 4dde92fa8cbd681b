"""The EventLog port: the one interface every log adapter (Kafka, embedded Postgres) implements.

Semantics follow Kafka's, so code written against the port behaves the same on either engine:
records are keyed, a key always maps to the same partition (Kafka's murmur2 partitioner), offsets
are dense per partition, a consumer group splits a topic's partitions between its members and
remembers a committed offset per partition, and `append_atomic` is all-or-nothing.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime


class EventLogError(Exception):
    """Any failure of the log itself (not of a handler)."""


class UnknownTopicError(EventLogError):
    """The topic was never provisioned."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int


@dataclass(frozen=True)
class Record:
    """A record to append. Headers carry the event envelope (see hartonomous.events)."""

    topic: str
    key: bytes
    value: bytes
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Position:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True)
class StoredRecord:
    """A record as the log holds it: where it sits and when the log accepted it."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: bytes
    value: bytes
    headers: Mapping[str, str]

    @property
    def position(self) -> Position:
        return Position(self.topic, self.partition, self.offset)


class Consumer(abc.ABC):
    """A member of a consumer group. Delivery is at-least-once: nothing is committed until
    `commit` is called with what was handled, so a crash re-delivers from the last commit."""

    @abc.abstractmethod
    async def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[StoredRecord]:
        """Next records of the assigned partitions, in offset order per partition.
        Waits up to `timeout` seconds when none is ready (without busy-polling)."""

    @abc.abstractmethod
    async def commit(self, records: Sequence[StoredRecord]) -> None:
        """Mark these records (and everything before them in their partitions) handled."""

    @abc.abstractmethod
    async def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this member currently owns."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the group so its partitions move to the other members."""


class EventLog(abc.ABC):
    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def ensure_topics(self, specs: Sequence[TopicSpec]) -> None:
        """Create missing topics (infinite retention). Existing topics are left as they are."""

    @abc.abstractmethod
    async def topics(self) -> dict[str, int]:
        """Topic name -> partition count."""

    @abc.abstractmethod
    async def append(self, records: Sequence[Record]) -> list[Position]:
        """Append records (batched, in order per key). Each record is durable on return;
        a failure part-way may leave a prefix appended."""

    @abc.abstractmethod
    async def append_atomic(
        self, records: Sequence[Record], *, within: float | None = None
    ) -> list[Position]:
        """Append records as one transaction: every record becomes visible, or none does.
        With `within` (seconds), give up with EventLogError and none visible once that has
        passed: a caller answering within a deadline says so rather than wait out an outage."""

    @abc.abstractmethod
    async def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> the offset the next appended record will get."""

    @abc.abstractmethod
    def consumer(self, group: str, topics: Sequence[str]) -> Consumer:
        """Join `group` for `topics`. Starts from the group's committed offsets (earliest when none)."""

    @abc.abstractmethod
    def replay(
        self,
        topic: str,
        *,
        from_offset: int | None = None,
        from_time: datetime | None = None,
        to_time: datetime | None = None,
    ) -> AsyncIterator[StoredRecord]:
        """Read a topic without joining a group, from an offset (in every partition) or the first
        record at/after `from_time`, up to the end offsets seen at the call (or `to_time`).
        Records are ordered by (timestamp, partition, offset)."""

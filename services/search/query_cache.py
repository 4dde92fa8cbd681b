"""The query cache and the repeated-query meter: pure logic, no I/O.

`QueryCache` maps (tenant id, query text) to the query's vector, so a dense or hybrid query
asked again skips inference's Embed. Its size is the `search.query_cache.size` tunable
(tunables.py), resized live; 0 turns it off and empties it.

- Tenants never share an entry: the tenant id is part of the key, so one tenant's query never
  reveals (by its speed or its vector) that another tenant asked it.
- Every entry is of one model version: a vector compares only with points of the model that
  made it, so when an Embed answer reports another version than the cached entries', they are
  all dropped. Until a miss reveals a new version, hits answer with the old one, as a query that
  reached an inference replica not yet upgraded would.
- A hit is not billed as Embed tokens: inference never sees the query, so it meters nothing
  (the search itself is still billed its one request, metering.py).
- An entry is the vector as float32 (what Embed's proto carries, so nothing is lost), about
  1.5 KiB plus its key.

`RepeatMeter` measures what a cache could gain, whether one is on or not: the share of queries
whose (tenant, text) was asked within the last `memory` distinct ones. `WindowShare` turns
running counts into one telemetry window's share.
"""

from __future__ import annotations

import array
import hashlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from services.search.domain import QueryVector

Key = tuple[str, str]
"""(tenant id, query text)"""

REPEAT_MEMORY = 4096
"""Distinct queries the repeated-query meter remembers."""


@dataclass(frozen=True)
class CacheStats:
    capacity: int
    size: int
    lookups: int  # since start, while the cache was on
    hits: int
    model_version: str | None  # of every entry; None when empty of any


class QueryCache:
    """A least-recently-used map of (tenant, text) to its query vector, of one model version."""

    def __init__(self, capacity: int = 0) -> None:
        self._entries: OrderedDict[Key, array.array[float]] = OrderedDict()
        self._capacity = 0
        self._model_version: str | None = None
        self._lookups = 0
        self._hits = 0
        self.resize(capacity)

    @property
    def capacity(self) -> int:
        return self._capacity

    def resize(self, capacity: int) -> None:
        """Hold at most `capacity` entries from now on: a smaller size evicts the least recently
        used ones, 0 empties the cache and turns it off."""
        if capacity < 0:
            raise ValueError(f"a cache holds 0 or more entries, not {capacity}")
        self._capacity = capacity
        while len(self._entries) > capacity:
            self._entries.popitem(last=False)
        if not self._entries:
            self._model_version = None

    def get(self, tenant_id: str, text: str) -> QueryVector | None:
        """The cached vector of this tenant's query, or None (always, while the cache is off:
        a lookup is counted only while it is on)."""
        if not self._capacity:
            return None
        self._lookups += 1
        key = (tenant_id, text)
        vector = self._entries.get(key)
        if vector is None or self._model_version is None:
            return None
        self._entries.move_to_end(key)
        self._hits += 1
        return QueryVector(vector.tolist(), self._model_version)

    def put(self, tenant_id: str, text: str, embedded: QueryVector) -> None:
        """Remember a fresh Embed answer (nothing while the cache is off). An answer of another
        model version than the cached entries' drops them all first."""
        if not self._capacity:
            return
        if embedded.model_version != self._model_version:
            self._entries.clear()
            self._model_version = embedded.model_version
        key = (tenant_id, text)
        self._entries[key] = array.array("f", embedded.vector)
        self._entries.move_to_end(key)
        while len(self._entries) > self._capacity:
            self._entries.popitem(last=False)

    @property
    def lookups(self) -> int:
        """Since start, while the cache was on."""
        return self._lookups

    @property
    def hits(self) -> int:
        return self._hits

    def stats(self) -> CacheStats:
        return CacheStats(
            self._capacity, len(self._entries), self._lookups, self._hits, self._model_version
        )


class RepeatMeter:
    """Counts queries, and those whose (tenant, text) is among the last `memory` distinct ones
    asked. It keeps a 16-byte digest per key, never the text, so its memory stays bounded
    whatever the queries' length."""

    def __init__(self, memory: int = REPEAT_MEMORY) -> None:
        if memory < 1:
            raise ValueError(f"the meter remembers 1 or more queries, not {memory}")
        self._memory = memory
        self._recent: OrderedDict[bytes, None] = OrderedDict()
        self.queries = 0
        self.repeats = 0

    def observe(self, tenant_id: str, text: str) -> bool:
        """Count one query; True when it is a repeat."""
        key = _digest(tenant_id, text)
        self.queries += 1
        if key in self._recent:
            self._recent.move_to_end(key)
            self.repeats += 1
            return True
        self._recent[key] = None
        if len(self._recent) > self._memory:
            self._recent.popitem(last=False)
        return False


def _digest(tenant_id: str, text: str) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(tenant_id.encode())
    digest.update(b"\0")  # a tenant id has no NUL, so the pair is read back one way only
    digest.update(text.encode())
    return digest.digest()


class WindowShare:
    """A telemetry gauge: part / whole of what two running counters gained since the last
    reading; None when the whole did not move (nothing measured in the window)."""

    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self._counts = counts
        self._seen = counts()

    def __call__(self) -> float | None:
        part, whole = self._counts()
        gained_part, gained_whole = part - self._seen[0], whole - self._seen[1]
        self._seen = (part, whole)
        return gained_part / gained_whole if gained_whole > 0 else None

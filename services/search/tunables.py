"""The search service's tunables (the `hartonomous.tunables` entry point loads TUNABLES)."""

from __future__ import annotations

from hartonomous.tunables import Kind, Risk, Tunable, consumer_batch

GROUP = "search"
MAX_BATCH = 200
"""Records polled at a time (each is applied on its own: keyed upserts)."""

QUERY_CACHE_SIZE = "search.query_cache.size"
COMPACTION_MIN_DEAD = "search.compaction.min_dead"
COMPACT_MIN_DEAD = 10_000
"""The embedded store's default (its shard.COMPACT_MIN_DEAD, repeated here so that reading the
declarations never loads the engine; a unit test keeps the two equal)."""

TUNABLES = (
    consumer_batch(GROUP, owner="search", default=MAX_BATCH),
    Tunable(
        key=QUERY_CACHE_SIZE,
        kind=Kind.INT,
        default=0,
        minimum=0,
        # An entry is ~1.5 KiB plus its query text: 100,000 short queries hold ~200 MiB.
        maximum=100_000,
        description="Query vectors the search service keeps per process, by tenant and query"
        " text, so a repeated dense or hybrid query skips inference's Embed (0: off)",
        owner="search",
        group="search.query_cache",
        risk=Risk.LOW,
    ),
    Tunable(
        key=COMPACTION_MIN_DEAD,
        kind=Kind.INT,
        default=COMPACT_MIN_DEAD,
        minimum=1,
        maximum=10_000_000,
        description="Dead vector slots a shard of the embedded store holds at least (and more"
        " than its live ones) before its next write compacts them away",
        owner="search",
        group="search.compaction",
        risk=Risk.LOW,
    ),
)

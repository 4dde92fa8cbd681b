"""The query cache (LRU by tenant and text, of one model version, resized live), the
repeated-query meter and the window share the telemetry gauges read."""

from __future__ import annotations

import pytest

from hartonomous.tunables import catalog
from services.search import tunables
from services.search.domain import QueryVector
from services.search.query_cache import QueryCache, RepeatMeter, WindowShare
from services.search.vectors.embedded.shard import COMPACT_MIN_DEAD


def vector(seed: float, version: str = "v1") -> QueryVector:
    return QueryVector([seed, 0.5, -0.25], version)


def test_an_off_cache_holds_nothing_and_counts_no_lookup() -> None:
    cache = QueryCache()
    cache.put("acme", "avro", vector(1.0))
    assert cache.get("acme", "avro") is None
    stats = cache.stats()
    assert (stats.capacity, stats.size, stats.lookups, stats.hits) == (0, 0, 0, 0)


def test_a_hit_returns_the_vector_and_its_model_version() -> None:
    cache = QueryCache(4)
    assert cache.get("acme", "avro") is None  # a miss
    cache.put("acme", "avro", vector(0.125))
    assert cache.get("acme", "avro") == vector(0.125)
    assert (cache.lookups, cache.hits) == (2, 1)


def test_tenants_never_share_an_entry() -> None:
    cache = QueryCache(4)
    cache.put("acme", "avro", vector(1.0))
    assert cache.get("globex", "avro") is None
    cache.put("globex", "avro", vector(2.0))
    assert cache.get("acme", "avro") == vector(1.0)
    assert cache.get("globex", "avro") == vector(2.0)


def test_the_least_recently_used_entry_goes_first() -> None:
    cache = QueryCache(2)
    cache.put("acme", "a", vector(1.0))
    cache.put("acme", "b", vector(2.0))
    assert cache.get("acme", "a") is not None  # "a" is now the most recent
    cache.put("acme", "c", vector(3.0))
    assert cache.get("acme", "b") is None
    assert cache.get("acme", "a") == vector(1.0) and cache.get("acme", "c") == vector(3.0)


def test_another_model_version_drops_the_stale_entries() -> None:
    cache = QueryCache(8)
    cache.put("acme", "a", vector(1.0, "v1"))
    cache.put("acme", "b", vector(2.0, "v1"))
    cache.put("acme", "c", vector(3.0, "v2"))  # a fresh Embed answer of a new model
    assert cache.get("acme", "a") is None and cache.get("acme", "b") is None
    assert cache.get("acme", "c") == vector(3.0, "v2")
    assert (cache.stats().size, cache.stats().model_version) == (1, "v2")


def test_shrinking_evicts_the_oldest_and_zero_turns_it_off() -> None:
    cache = QueryCache(3)
    for n, text in enumerate("abc"):
        cache.put("acme", text, vector(float(n)))
    cache.resize(2)
    assert cache.get("acme", "a") is None
    assert cache.get("acme", "b") is not None and cache.get("acme", "c") is not None
    lookups = cache.lookups
    cache.resize(0)
    assert cache.stats().size == 0 and cache.stats().model_version is None
    cache.put("acme", "b", vector(1.0))
    assert cache.get("acme", "b") is None and cache.lookups == lookups
    cache.resize(2)  # on again, empty
    assert cache.get("acme", "b") is None
    with pytest.raises(ValueError):
        cache.resize(-1)


def test_a_vector_comes_back_exactly_as_float32() -> None:
    """Embed's proto carries float32: a cached vector is the one a miss would have returned."""
    cache = QueryCache(1)
    cache.put("acme", "a", QueryVector([0.1, 1 / 3], "v1"))
    hit = cache.get("acme", "a")
    assert hit is not None
    assert list(hit.vector) == pytest.approx([0.1, 1 / 3], rel=1e-7)


def test_the_meter_counts_repeats_within_its_memory() -> None:
    meter = RepeatMeter(memory=2)
    asked = [("acme", "a"), ("acme", "a"), ("globex", "a"), ("acme", "b"), ("acme", "a")]
    # "a" of acme repeats once; the third query for it comes after two others: forgotten.
    assert [meter.observe(*query) for query in asked] == [False, True, False, False, False]
    assert (meter.queries, meter.repeats) == (5, 1)
    with pytest.raises(ValueError):
        RepeatMeter(memory=0)


def test_a_repeat_refreshes_the_query_in_the_meter() -> None:
    meter = RepeatMeter(memory=2)
    for query in ["a", "b", "a", "c", "a"]:
        meter.observe("acme", query)
    assert meter.repeats == 2  # "a" was asked again each time before two others pushed it out


def test_the_window_share_is_what_moved_since_the_last_reading() -> None:
    meter = RepeatMeter()
    share = WindowShare(lambda: (meter.repeats, meter.queries))
    assert share() is None  # no query in the window
    for query in ["a", "a", "a", "b"]:
        meter.observe("acme", query)
    assert share() == 0.5
    assert share() is None
    meter.observe("acme", "b")
    assert share() == 1.0


def test_the_tunables_are_declared_with_the_engines_default() -> None:
    declared = catalog()
    size = declared[tunables.QUERY_CACHE_SIZE]
    assert (size.default, size.minimum, size.maximum, size.owner) == (0, 0, 100_000, "search")
    min_dead = declared[tunables.COMPACTION_MIN_DEAD]
    assert min_dead.default == tunables.COMPACT_MIN_DEAD == COMPACT_MIN_DEAD
    assert (min_dead.minimum, min_dead.owner, min_dead.group) == (1, "search", "search.compaction")

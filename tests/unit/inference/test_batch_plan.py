"""plan_calls: how the batcher splits one batch into padded model calls (pure, no model)."""

from __future__ import annotations

import random

from services.inference.batching import DEFAULT_MAX_BATCH_SIZE
from services.inference.planning import (
    DEFAULT_LENGTH_BUCKETS,
    call_cost,
    call_sizes,
    pick_bucket,
    plan_calls,
)

SIZES = call_sizes(DEFAULT_MAX_BATCH_SIZE)


def total(calls: list[tuple[tuple[int, int], list[int]]]) -> float:
    return sum(call_cost(shape) for shape, _ in calls)


def test_every_text_lands_once_in_a_call_that_holds_it() -> None:
    rng = random.Random(3)
    for n in (1, 2, 7, 32, 100):
        lengths = [rng.randint(2, 256) for _ in range(n)]
        calls = plan_calls(lengths, SIZES, DEFAULT_LENGTH_BUCKETS)
        assert sorted(i for _, rows in calls for i in rows) == list(range(n))
        for (batch, seq_len), rows in calls:
            assert batch in SIZES and seq_len in DEFAULT_LENGTH_BUCKETS
            assert len(rows) <= batch
            assert all(lengths[i] <= seq_len for i in rows)


def test_an_outlier_gets_its_own_call_instead_of_padding_the_rest() -> None:
    lengths = [20] * 31 + [250]
    calls = plan_calls(lengths, SIZES, DEFAULT_LENGTH_BUCKETS)
    assert [(shape, len(rows)) for shape, rows in calls] == [((32, 20), 31), ((1, 256), 1)]


def test_never_costlier_than_one_call_per_length_bucket() -> None:
    rng = random.Random(5)
    for _ in range(20):
        lengths = [rng.randint(8, 70) for _ in range(32)]
        by_bucket: dict[int, list[int]] = {}
        for i, n in enumerate(lengths):
            by_bucket.setdefault(pick_bucket(n, DEFAULT_LENGTH_BUCKETS), []).append(i)
        naive = [((pick_bucket(len(rows), SIZES), s), rows) for s, rows in by_bucket.items()]
        assert total(plan_calls(lengths, SIZES, DEFAULT_LENGTH_BUCKETS)) <= total(naive)


def test_no_texts_no_calls() -> None:
    assert plan_calls([], SIZES, DEFAULT_LENGTH_BUCKETS) == []

"""Dynamic micro-batching: buckets, coalescing, static shapes, runtime tuning."""

from __future__ import annotations

import asyncio
import time

import jax
import numpy as np
import pytest

from services.inference.batching import Batcher
from services.inference.models.minilm import MiniLM
from services.inference.planning import call_sizes, pick_bucket
from tests.support.compiles import count_compiles

# Small bucket sets keep warm-up cheap on a 2-core CPU; every test uses the same ones, so
# the process-wide jit cache compiles each shape once for the whole module.
LENGTHS = (16, 256)
WORDS = ("ledger", "atom", "tenant", "replay", "vector", "search", "billing", "graph", "audit")
TEXTS = [f"caller {i} asks about " + " ".join(WORDS[: 1 + i % len(WORDS)]) for i in range(50)]
LONG = "a sentence long enough to need the larger length bucket " * 4


def test_call_sizes_stop_at_the_max_batch_size_and_the_largest_call() -> None:
    assert call_sizes(1) == (1,)
    assert call_sizes(8) == (1, 2, 4, 8)
    assert call_sizes(20) == (1, 2, 4, 8, 16, 20)
    assert call_sizes(48) == call_sizes(256) == (1, 2, 4, 8, 16, 24, 32)
    with pytest.raises(ValueError):
        call_sizes(0)


def test_pick_bucket_takes_the_smallest_that_fits() -> None:
    buckets = (16, 32, 64, 128, 256)
    assert [pick_bucket(n, buckets) for n in (1, 16, 17, 64, 65, 256)] == [
        16,
        16,
        32,
        64,
        128,
        256,
    ]
    with pytest.raises(ValueError):
        pick_bucket(257, buckets)


def test_length_buckets_must_cover_max_seq_length(model: MiniLM) -> None:
    with pytest.raises(ValueError, match="max_seq_length"):
        Batcher(model, length_buckets=(16, 128))


async def test_concurrent_callers_are_coalesced(model: MiniLM) -> None:
    async with Batcher(model, max_batch_size=8, max_wait_ms=20, length_buckets=LENGTHS) as b:
        results = await asyncio.gather(*(b.embed([text]) for text in TEXTS))
        stats = b.stats()

    expected = model.encode(TEXTS)
    for text, got, want in zip(TEXTS, results, expected, strict=True):
        assert got.shape == (1, model.dim)
        np.testing.assert_allclose(got[0], want, atol=1e-5, err_msg=text)
    assert stats.texts == 50
    assert stats.batches <= 10
    assert sum(size * n for size, n in stats.batch_size_histogram.items()) == 50
    assert max(stats.batch_size_histogram) == 8
    assert stats.queue_depth == 0


async def test_a_request_larger_than_a_batch_keeps_its_order(model: MiniLM) -> None:
    texts = [*TEXTS[:10], LONG, *TEXTS[10:19]]
    async with Batcher(model, max_batch_size=8, max_wait_ms=1, length_buckets=LENGTHS) as b:
        got = await b.embed(texts)
        stats = b.stats()
    np.testing.assert_allclose(got, model.encode(texts), atol=1e-5)
    assert stats.batches == 3
    assert stats.model_calls >= 3


async def test_callers_arriving_within_max_wait_share_a_batch(model: MiniLM) -> None:
    """While a batch runs, the next one waits up to max_wait_ms for more callers."""
    async with Batcher(model, max_batch_size=8, max_wait_ms=500, length_buckets=LENGTHS) as b:
        running = asyncio.create_task(b.embed([LONG] * 8))  # a full batch: it goes at once
        first = asyncio.create_task(b.embed(["first"]))
        await asyncio.sleep(0.05)
        await asyncio.gather(running, first, b.embed(["second"]))
        assert sorted(b.stats().last_batch_sizes) == [2, 8]  # in the order they finished


async def test_a_caller_that_finds_the_model_idle_does_not_wait(model: MiniLM) -> None:
    async with Batcher(model, max_batch_size=8, max_wait_ms=5000, length_buckets=LENGTHS) as b:
        await b.warmup()
        started = time.monotonic()
        await b.embed(["alone"])
        assert time.monotonic() - started < 2.5  # not the 5 s a batch may wait for company
        assert b.stats().last_batch_sizes == (1,)


def test_compile_counter_sees_compilations() -> None:
    with count_compiles() as compiles:
        jax.jit(lambda x: x * 3 + 1)(np.arange(7))
    assert len(compiles) == 1


async def test_stats_show_warm_up_progress(model: MiniLM) -> None:
    async with Batcher(model, max_batch_size=4, length_buckets=LENGTHS) as b:
        assert (b.stats().compiled_shapes, b.stats().shapes_to_compile) == (0, 0)
        warming = asyncio.create_task(b.warmup())
        await asyncio.sleep(0)  # the warm-up queued its shapes and the first one is compiling
        # (on a worker thread: it may already be done, but counts as queued until the warm-up
        # task, which only this test's next await lets run, takes it off)
        assert b.stats().shapes_to_compile == len(b.shapes)
        await warming
        assert (b.stats().compiled_shapes, b.stats().shapes_to_compile) == (len(b.shapes), 0)


async def test_a_cancelled_warm_up_leaves_no_shapes_queued(model: MiniLM) -> None:
    async with Batcher(model, max_batch_size=4, length_buckets=LENGTHS) as b:
        warming = asyncio.create_task(b.warmup())
        await asyncio.sleep(0)
        warming.cancel()
        with pytest.raises(asyncio.CancelledError):
            await warming
        assert b.stats().shapes_to_compile == 0


async def test_no_compilation_after_warmup(model: MiniLM) -> None:
    async with Batcher(model, max_batch_size=8, max_wait_ms=5, length_buckets=LENGTHS) as b:
        await b.warmup()
        with count_compiles() as compiles:
            for n in (1, 3, 8, 13):
                await asyncio.gather(*(b.embed([t]) for t in TEXTS[:n]))
            await asyncio.gather(b.embed([LONG, TEXTS[0]]), b.embed(["x" * 5000]))
            await b.warmup()
        assert compiles == []
        assert b.stats().model_calls >= 6


async def test_update_retunes_at_run_time_without_compiling_on_requests(model: MiniLM) -> None:
    async with Batcher(model, max_batch_size=4, max_wait_ms=200, length_buckets=LENGTHS) as b:
        await b.warmup()
        await b.update(max_batch_size=8, max_wait_ms=300)
        assert (b.stats().max_batch_size, b.stats().max_wait_ms) == (8, 300)
        assert (8, 256) in b.shapes
        with count_compiles() as compiles:
            await asyncio.gather(*(b.embed([t]) for t in TEXTS[:8]))
            assert b.stats().last_batch_sizes[-1] == 8

            await b.update(max_batch_size=2)
            await asyncio.gather(*(b.embed([t]) for t in TEXTS[:8]))
        assert compiles == []
        assert b.stats().last_batch_sizes[-4:] == (2, 2, 2, 2)
        assert b.stats().max_wait_ms == 300

        with pytest.raises(ValueError):
            await b.update(max_batch_size=0)
        with pytest.raises(ValueError):
            await b.update(max_wait_ms=-1)
        assert (b.stats().max_batch_size, b.stats().max_wait_ms) == (2, 300)


async def test_bad_input(model: MiniLM) -> None:
    async with Batcher(model, length_buckets=LENGTHS) as b:
        empty = await b.embed([])
        assert empty.shape == (0, model.dim)
        assert empty.dtype == np.float32
        with pytest.raises(TypeError):
            await b.embed(["ok", 3])  # type: ignore[list-item]
        assert b.stats().batches == 0


async def test_close_fails_waiting_callers(model: MiniLM) -> None:
    b = Batcher(model, max_batch_size=8, max_wait_ms=60_000, length_buckets=LENGTHS)
    waiting = asyncio.create_task(b.embed(["never batched"]))
    await asyncio.sleep(0.01)
    await b.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await waiting


async def test_update_during_a_take_applies_to_the_next_batch(model: MiniLM) -> None:
    async with Batcher(model, max_batch_size=8, max_wait_ms=200, length_buckets=LENGTHS) as b:
        running = asyncio.create_task(b.embed([LONG] * 8))
        calls = [asyncio.create_task(b.embed([t])) for t in TEXTS[:5]]
        await asyncio.sleep(0.02)  # a batch runs, so the collector holds 5 and waits for more
        await b.update(max_batch_size=2)
        results = await asyncio.gather(*calls)
        await running
        assert sorted(b.stats().last_batch_sizes) == [5, 8]  # in the order they finished
        await asyncio.gather(*(b.embed([t]) for t in TEXTS[:4]))
        assert b.stats().last_batch_sizes[2:] == (2, 2)
    np.testing.assert_allclose(np.concatenate(results), model.encode(TEXTS[:5]), atol=1e-5)

"""Dynamic micro-batching of embedding requests from many asyncio callers.

Texts from concurrent `embed` calls wait in one queue; a collector task takes up to
`max_batch_size` of them, or whatever arrived within `max_wait_ms` of the oldest, and
runs them on a single worker thread so the event loop never blocks on the model. Inside a
batch, texts are grouped by padded length bucket and each group is padded to a batch-size
bucket, so the model only ever sees a small fixed set of shapes: after `warmup()` compiles
them all, no request triggers an XLA compilation.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType

import numpy as np

from services.inference.models.minilm import MiniLM
from services.inference.models.tokenizer import pad_batch

DEFAULT_LENGTH_BUCKETS = (16, 32, 64, 128, 256)
Shape = tuple[int, int]
"""(batch size, sequence length) of one model call."""


def batch_buckets(max_batch_size: int) -> tuple[int, ...]:
    """Powers of two below max_batch_size, then max_batch_size itself: (1, 2, 4, ..., max)."""
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    sizes = []
    size = 1
    while size < max_batch_size:
        sizes.append(size)
        size *= 2
    return (*sizes, max_batch_size)


def pick_bucket(n: int, buckets: Sequence[int]) -> int:
    """The smallest bucket that holds n (buckets ascending)."""
    for bucket in buckets:
        if n <= bucket:
            return bucket
    raise ValueError(f"{n} exceeds the largest bucket {buckets[-1]}")


@dataclass(frozen=True)
class BatcherStats:
    """A snapshot for metrics. A batch is one coalesced take from the queue; it costs one
    model call per length bucket it spans."""

    batches: int
    model_calls: int
    texts: int
    queue_depth: int
    max_batch_size: int
    max_wait_ms: float
    last_batch_sizes: tuple[int, ...]
    batch_size_histogram: dict[int, int]


@dataclass
class _Request:
    rows: np.ndarray
    future: asyncio.Future[np.ndarray]
    remaining: int


@dataclass
class _Item:
    text: str
    request: _Request
    row: int
    enqueued_at: float


@dataclass
class _Counters:
    batches: int = 0
    model_calls: int = 0
    texts: int = 0
    last_batch_sizes: collections.deque[int] = field(
        default_factory=lambda: collections.deque(maxlen=64)
    )
    histogram: collections.Counter[int] = field(default_factory=collections.Counter)


class Batcher:
    """Coalesces `await embed(texts)` calls into static-shape batches for one model.

    Bind it to one event loop: the collector task starts on the first `embed` and stops
    in `aclose()` (or at the end of `async with`).
    """

    def __init__(
        self,
        model: MiniLM,
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        length_buckets: Sequence[int] = DEFAULT_LENGTH_BUCKETS,
    ) -> None:
        buckets = tuple(sorted(length_buckets))
        if not buckets or buckets[-1] < model.max_seq_length:
            raise ValueError(
                f"length buckets {buckets} must reach max_seq_length {model.max_seq_length}"
            )
        _validate(max_batch_size, max_wait_ms)
        self._model = model
        self._length_buckets = buckets
        self._max_batch_size = max_batch_size
        self._max_wait_ms = max_wait_ms
        self._pending: collections.deque[_Item] = collections.deque()
        self._arrived = asyncio.Event()
        self._in_flight: list[_Item] = []
        self._collector: asyncio.Task[None] | None = None
        # One thread: model calls are serialised, and each already uses every core.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._warm: set[Shape] = set()
        self._counters = _Counters()

    async def __aenter__(self) -> Batcher:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def shapes(self) -> tuple[Shape, ...]:
        """Every shape the current settings can send to the model."""
        return self._shapes(self._max_batch_size)

    def _shapes(self, max_batch_size: int) -> tuple[Shape, ...]:
        return tuple((b, s) for b in batch_buckets(max_batch_size) for s in self._length_buckets)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 [len(texts), dim] unit embeddings, in order. TypeError for non-str."""
        for text in texts:
            if not isinstance(text, str):
                raise TypeError(f"texts must be str, got {type(text).__name__}")
        if not texts:
            return np.empty((0, self._model.dim), dtype=np.float32)
        loop = asyncio.get_running_loop()
        request = _Request(
            rows=np.empty((len(texts), self._model.dim), dtype=np.float32),
            future=loop.create_future(),
            remaining=len(texts),
        )
        if self._collector is None or self._collector.done():
            self._collector = loop.create_task(self._collect(), name="inference-batcher")
        now = loop.time()
        self._pending.extend(_Item(t, request, i, now) for i, t in enumerate(texts))
        self._arrived.set()
        return await request.future

    async def warmup(self) -> None:
        """Compile every shape the current settings allow; shapes already compiled are
        skipped. A warmed batcher stays warm: `update` compiles new shapes before use."""
        await self._compile(self.shapes)

    async def update(
        self, *, max_batch_size: int | None = None, max_wait_ms: float | None = None
    ) -> None:
        """Retune at run time (e.g. from a control-topic handler). Applies to the next batch."""
        new_size = self._max_batch_size if max_batch_size is None else max_batch_size
        new_wait = self._max_wait_ms if max_wait_ms is None else max_wait_ms
        _validate(new_size, new_wait)
        if self._warm:
            await self._compile(self._shapes(new_size))
        self._max_batch_size = new_size
        self._max_wait_ms = new_wait

    def stats(self) -> BatcherStats:
        c = self._counters
        return BatcherStats(
            batches=c.batches,
            model_calls=c.model_calls,
            texts=c.texts,
            queue_depth=len(self._pending),
            max_batch_size=self._max_batch_size,
            max_wait_ms=self._max_wait_ms,
            last_batch_sizes=tuple(c.last_batch_sizes),
            batch_size_histogram=dict(c.histogram),
        )

    async def aclose(self) -> None:
        """Stop collecting; callers still waiting get a RuntimeError."""
        if self._collector is not None:
            self._collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._collector
        error = RuntimeError("the batcher is closed")
        for item in [*self._in_flight, *self._pending]:
            if not item.request.future.done():
                item.request.future.set_exception(error)
        self._pending.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def _compile(self, shapes: Sequence[Shape]) -> None:
        todo = [shape for shape in shapes if shape not in self._warm]
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._run_shapes, todo)
        self._warm.update(todo)

    def _run_shapes(self, shapes: Sequence[Shape]) -> None:
        for batch, seq_len in shapes:
            self._model.embed(*pad_batch([], seq_len, batch))

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            max_batch_size = await self._take_batch(loop)
            batch = self._in_flight
            try:
                rows, calls = await loop.run_in_executor(
                    self._executor, self._run, [item.text for item in batch], max_batch_size
                )
            except Exception as exc:
                for item in batch:
                    if not item.request.future.done():
                        item.request.future.set_exception(exc)
            else:
                for item, row in zip(batch, rows, strict=True):
                    request = item.request
                    request.rows[item.row] = row
                    request.remaining -= 1
                    if request.remaining == 0 and not request.future.done():
                        request.future.set_result(request.rows)
                self._count(len(batch), calls)
            self._in_flight = []

    async def _take_batch(self, loop: asyncio.AbstractEventLoop) -> int:
        """Fill self._in_flight with up to max_batch_size items, waiting at most max_wait_ms
        after the oldest one arrived (items that queued during the last batch go at once).

        Returns the max_batch_size it filled to: the settings are read once the first item is
        there, so an `update` landing mid-take applies to the next batch.
        """
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        max_batch_size = self._max_batch_size
        deadline = self._pending[0].enqueued_at + self._max_wait_ms / 1000
        batch = self._in_flight
        while True:
            while self._pending and len(batch) < max_batch_size:
                batch.append(self._pending.popleft())
            timeout = deadline - loop.time()
            if len(batch) >= max_batch_size or timeout <= 0:
                return max_batch_size
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout)

    def _run(self, texts: list[str], max_batch_size: int) -> tuple[np.ndarray, int]:
        """Worker thread: tokenize, one padded model call per length bucket."""
        token_ids = self._model.tokenize(texts)
        by_length: dict[int, list[int]] = collections.defaultdict(list)
        for i, seq in enumerate(token_ids):
            by_length[pick_bucket(len(seq), self._length_buckets)].append(i)
        sizes = batch_buckets(max_batch_size)
        out = np.empty((len(texts), self._model.dim), dtype=np.float32)
        for seq_len, rows in by_length.items():
            batch = pick_bucket(len(rows), sizes)
            ids, mask = pad_batch([token_ids[i] for i in rows], seq_len, batch)
            out[rows] = self._model.embed(ids, mask)[: len(rows)]
        return out, len(by_length)

    def _count(self, batch_size: int, model_calls: int) -> None:
        c = self._counters
        c.batches += 1
        c.model_calls += model_calls
        c.texts += batch_size
        c.last_batch_sizes.append(batch_size)
        c.histogram[batch_size] += 1


def _validate(max_batch_size: int, max_wait_ms: float) -> None:
    if max_batch_size < 1:
        raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
    if max_wait_ms < 0:
        raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")

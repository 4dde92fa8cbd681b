"""Continuous batching for the decoder: a fixed set of sequence slots over one preallocated
KV cache; a request waits in a bounded queue, is prefilled into a free slot, and joins the
running decode batch at the next step; a finished or cancelled one leaves it at once.

Shapes are static so nothing compiles after warm-up: a prefill pads its prompt to one of a few
length buckets; a decode step attends over a window of the cache, the first multiple of
WINDOW positions past the furthest running sequence, and runs all slots (an idle slot computes
on a dummy token, in its own cache row, and is ignored).

A sequence's logits never depend on what else is in the batch, which is what lets a receipt
be re-run to the bit: the step always has every slot's rows (a matmul's rounding depends on
its row count: at one row XLA picks another kernel), and the window only adds masked
positions, exact zeros in every sum. Steps run on a worker thread, so the event loop keeps
serving."""

from __future__ import annotations

import asyncio
import collections
import functools
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from services.inference.models import llama
from services.inference.models.llama import LlamaConfig, Params
from services.inference.models.llama_model import LlamaModel
from services.inference.sampling import Sampler, SamplingParams

PROMPT_BUCKETS = (32, 64, 128, 256, 512, 1024)
WINDOW = 128
"""Decode windows are multiples of this: attention at 8 slots costs ~8 ms per 128 positions
(docs/performance.md), one compilation each (~0.5 s)."""


class GenerationError(ValueError):
    """A request the caller has to fix (the message says how)."""


class ContextTooLong(GenerationError):
    pass


class Busy(RuntimeError):
    """Every slot is taken and the queue is full: retry later."""


@dataclass(frozen=True)
class Step:
    token: int
    text: str  # what this token adds to the answer's text (may be "" mid-character)


@dataclass(frozen=True)
class Finished:
    reason: str  # stop (EOS or a stop string), length (max_tokens), cancelled
    prompt_tokens: int
    completion_tokens: int
    tokens: tuple[int, ...]
    text: str
    first_token_s: float  # time to the first token, from submission
    total_s: float


@dataclass(eq=False)
class Generation:
    """One request: its events arrive on `events` (Step..., then Finished)."""

    prompt: tuple[int, ...]
    params: SamplingParams
    sampler: Sampler
    submitted: float
    events: asyncio.Queue[Step | Finished] = field(default_factory=asyncio.Queue)
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    first_token_s: float = 0.0
    cancelled: bool = False
    slot: int = -1

    def cancel(self) -> None:
        """The client went away: the slot is freed at the next step."""
        self.cancelled = True

    async def stream(self) -> AsyncIterator[Step | Finished]:
        while True:
            event = await self.events.get()
            yield event
            if isinstance(event, Finished):
                return


@functools.partial(jax.jit, static_argnames="config", donate_argnames=("k", "v"))
def _prefill(
    params: Params,
    tokens: jax.Array,
    slot: jax.Array,
    last: jax.Array,
    k: jax.Array,
    v: jax.Array,
    config: LlamaConfig,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One prompt [1, bucket] into cache row `slot`; the logits at its last real token."""
    start = (0, slot, 0, 0, 0)
    size = (k.shape[0], 1, *k.shape[2:])
    row_k, row_v = jax.lax.dynamic_slice(k, start, size), jax.lax.dynamic_slice(v, start, size)
    zero = jnp.zeros((1,), jnp.int32)
    logits, row_k, row_v = llama.forward(params, tokens, zero, last[None], row_k, row_v, config)
    k = jax.lax.dynamic_update_slice(k, row_k, start)
    v = jax.lax.dynamic_update_slice(v, row_v, start)
    return logits[0], k, v


class Engine:
    def __init__(
        self,
        model: LlamaModel,
        *,
        slots: int = 8,
        cache_len: int = 1024,
        max_queue: int = 64,
    ) -> None:
        self.model = model
        self.slots = slots
        self.cache_len = cache_len
        self._max_queue = max_queue
        self._buckets = (*(b for b in PROMPT_BUCKETS if b < cache_len), cache_len)
        self._windows = (*range(WINDOW, cache_len, WINDOW), cache_len)
        self._k, self._v = llama.empty_cache(model.config, slots, cache_len)
        self._waiting: collections.deque[Generation] = collections.deque()
        self._active: dict[int, Generation] = {}
        self._wake = asyncio.Event()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="decoder")
        self._task: asyncio.Task[None] | None = None

    @property
    def context_length(self) -> int:
        return self.cache_len

    def submit(self, prompt: Sequence[int], params: SamplingParams) -> Generation:
        """Raises ContextTooLong, GenerationError or Busy; nothing is queued then."""
        if not prompt:
            raise GenerationError("the prompt is empty")
        if params.max_tokens < 1:
            raise GenerationError("max_tokens must be at least 1")
        if len(prompt) + params.max_tokens > self.cache_len:
            raise ContextTooLong(
                f"the prompt's {len(prompt)} tokens plus max_tokens {params.max_tokens} exceed"
                f" the context of {self.cache_len} tokens"
            )
        if len(self._waiting) >= self._max_queue:
            raise Busy(f"{self.slots} sequences are running and {self._max_queue} waiting")
        generation = Generation(tuple(prompt), params, Sampler(params), time.perf_counter())
        self._waiting.append(generation)
        self._wake.set()
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="decoder")
        return generation

    def load(self) -> tuple[int, int]:
        """(running, waiting) sequences."""
        return len(self._active), len(self._waiting)

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def warmup(self) -> None:
        """Compile every prefill bucket and decode window, in the cache's own rows."""
        for bucket in self._buckets:
            await self._call(self._prefill_now, [0] * bucket, 0, 0)
        for window in self._windows:
            await self._call(self._decode_now, [0] * self.slots, [window - 1] * self.slots)

    async def _run(self) -> None:
        while True:
            if not self._active and not self._waiting:
                self._wake.clear()
                await self._wake.wait()
            await self._admit()
            if self._active:
                await self._step()

    async def _admit(self) -> None:
        free = [s for s in range(self.slots) if s not in self._active]
        while free and self._waiting:
            generation = self._waiting.popleft()
            if generation.cancelled:
                self._finish(generation, "cancelled")
                continue
            generation.slot = slot = free.pop(0)
            prompt = list(generation.prompt)
            bucket = next(b for b in self._buckets if b >= len(prompt))
            padded = prompt + [0] * (bucket - len(prompt))
            logits = await self._call(self._prefill_now, padded, slot, len(prompt) - 1)
            self._active[slot] = generation
            self._advance(generation, logits)

    async def _step(self) -> None:
        tokens, positions = [0] * self.slots, [0] * self.slots
        for slot, generation in self._active.items():
            tokens[slot] = generation.tokens[-1]
            positions[slot] = len(generation.prompt) + len(generation.tokens) - 1
        logits = await self._call(self._decode_now, tokens, positions)
        for slot, generation in list(self._active.items()):
            self._advance(generation, logits[slot])

    def _advance(self, generation: Generation, logits: np.ndarray) -> None:
        """Choose the next token, emit it, and finish the sequence if it is done."""
        if generation.cancelled:
            self._finish(generation, "cancelled")
            return
        token = generation.sampler.choose(logits)
        tokenizer = self.model.tokenizer
        if token == tokenizer.eos_id:
            self._finish(generation, "stop")
            return
        if not generation.tokens:
            generation.first_token_s = time.perf_counter() - generation.submitted
        generation.tokens.append(token)
        text = tokenizer.decode(generation.tokens)
        if text.endswith("\ufffd"):  # a character split across tokens: wait for the rest
            generation.events.put_nowait(Step(token, ""))
        else:
            stop = _first_stop(text, generation.params.stop)
            delta = text[len(generation.text) : stop]
            generation.text = text[:stop]
            generation.events.put_nowait(Step(token, delta))
            if stop is not None:
                self._finish(generation, "stop")
                return
        if len(generation.tokens) >= generation.params.max_tokens:
            self._finish(generation, "length")

    def _finish(self, generation: Generation, reason: str) -> None:
        self._active.pop(generation.slot, None)
        generation.events.put_nowait(
            Finished(
                reason=reason,
                prompt_tokens=len(generation.prompt),
                completion_tokens=len(generation.tokens),
                tokens=tuple(generation.tokens),
                text=generation.text,
                first_token_s=generation.first_token_s,
                total_s=time.perf_counter() - generation.submitted,
            )
        )

    async def _call(self, fn: object, *args: object) -> np.ndarray:
        loop = asyncio.get_running_loop()
        result: np.ndarray = await loop.run_in_executor(self._executor, fn, *args)  # type: ignore[arg-type]
        return result

    def _prefill_now(self, padded: list[int], slot: int, last: int) -> np.ndarray:
        tokens = jnp.asarray([padded], jnp.int32)
        logits, self._k, self._v = _prefill(
            self.model.params,
            tokens,
            jnp.int32(slot),
            jnp.int32(last),
            self._k,
            self._v,
            self.model.config,
        )
        return np.asarray(logits)

    def _decode_now(self, tokens: list[int], positions: list[int]) -> np.ndarray:
        furthest = max(positions)
        window = next(w for w in self._windows if w > furthest)
        logits, self._k, self._v = llama.decode_step(
            self.model.params,
            jnp.asarray(tokens, jnp.int32),
            jnp.asarray(positions, jnp.int32),
            self._k,
            self._v,
            self.model.config,
            window,
        )
        return np.asarray(logits)


def _first_stop(text: str, stops: Sequence[str]) -> int | None:
    """Where the earliest stop string starts in text, if any does."""
    found = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(found) if found else None

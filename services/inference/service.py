"""Wiring: load the model once, share one Batcher between the gRPC API and the consumer,
warm the common shapes, and export the batcher's numbers to Prometheus."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import jax
from prometheus_client import REGISTRY
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from hartonomous.blobs import BlobStore, open_blob_store
from hartonomous.modelfiles import MINILM_NAME
from hartonomous.postgres import create_pool
from hartonomous.runtime.grpc_server import GrpcRegistration
from hartonomous.runtime.peers import peer_channel
from hartonomous.runtime.service import Service, ServiceContext, Wiring, in_background
from hartonomous.settings import Settings
from hartonomous.v1 import inference_pb2, inference_pb2_grpc
from services.inference import domain, tunables
from services.inference.api import InferenceApi
from services.inference.batching import Batcher
from services.inference.decoding import Engine
from services.inference.generation import GENERATION_MODEL, Recorder, Served
from services.inference.handlers import Deps, inference_projection
from services.inference.models.atoms import live_version, load_from_atoms, load_llama_from_atoms
from services.inference.models.minilm import MiniLM
from services.inference.planning import CALL_SIZES, Shape
from services.inference.receipt_store import ReceiptStore, receipt_projection
from services.inference.slot import Loaded, ModelSlot, Slot

logger = logging.getLogger(__name__)
GRPC_SERVICE = inference_pb2.DESCRIPTOR.services_by_name["Inference"].full_name
INGEST_WAIT_S = 600.0
"""How long the first start waits for ingest to hold the bundled MiniLM as atoms (it stores
it on its own first start; in Kubernetes the ingest pods may come up later)."""


@dataclass(frozen=True)
class WarmupPlan:
    """Which shapes `start` compiles before traffic needs them, whether it waits, and whether
    compiled shapes are kept on disk.

    A shape compiles in about half a second on 2 cores and the default batcher has 175 of
    them (7 call sizes x 25 lengths), so by default the common ones (every call size, up to
    128 tokens: 147 shapes, about 80 s) compile in the background after start: the service
    is SERVING at once, and a request meeting a shape not compiled yet compiles it (once).
    With `cache`, compiled shapes are kept under `<data dir>/inference/xla-cache`, so a
    restart loads them (about 0.1 s a shape) instead of compiling them again.
    """

    max_rows: int = CALL_SIZES[-1]
    max_length: int = 128
    wait: bool = False
    cache: bool = True

    def select(self, shapes: Iterable[Shape]) -> list[Shape]:
        """The shapes to compile, cheapest first so small requests are ready soonest."""
        chosen = [s for s in shapes if s[0] <= self.max_rows and s[1] <= self.max_length]
        return sorted(chosen, key=lambda s: (s[0] * s[1], s))


def keep_compiled_shapes(directory: Path) -> None:
    """JAX's persistent compilation cache in `directory`. It is process-wide and the first
    directory set stays in use, so a second service in the same process shares it."""
    # jax.config's flags and update are untyped upstream.
    if jax.config.jax_compilation_cache_dir is None:  # type: ignore[attr-defined]
        directory.mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", str(directory))  # type: ignore[no-untyped-call]
        # A shape compiles in about 0.5 s, under JAX's default 1 s threshold for caching.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class GenerationPlan:
    """The decoder's engine: sequences decoded at once and the tokens each may span."""

    slots: int = 8
    context: int = 1024

    @classmethod
    def from_settings(cls, settings: Settings) -> GenerationPlan | None:
        """HARTONOMOUS_GENERATION_SLOTS (0: none) and HARTONOMOUS_GENERATION_CONTEXT."""
        if settings.generation_slots < 0 or settings.generation_context < 32:
            raise ValueError(
                "HARTONOMOUS_GENERATION_SLOTS must be 0 (off) or more and"
                " HARTONOMOUS_GENERATION_CONTEXT at least 32 tokens"
            )
        if settings.generation_slots == 0:
            return None
        return cls(settings.generation_slots, settings.generation_context)


class InferenceService(Service):
    name = "inference"

    def __init__(
        self,
        *,
        warmup: WarmupPlan | None = None,
        model: MiniLM | None = None,
        generation: GenerationPlan | Literal["settings"] | None = "settings",
    ) -> None:
        """`model`: an already loaded model to share (default: the live system MiniLM, loaded
        from its tensor atoms by the first start). `generation`: serve the live system
        SmolLM2 too, with that many slots and that context (loaded from its atoms, then
        warmed, after start); None: this process does not generate; "settings": as the
        process's settings say (GenerationPlan.from_settings). The batcher's size and wait are
        tunables (tunables.py), retuned live."""
        self._warmup = WarmupPlan() if warmup is None else warmup
        self._model = model
        self._generation = generation
        self._slot: ModelSlot | None = None
        self._generator: Slot[Served] | None = None

    def generator_now(self) -> Served | None:
        """The decoder's engine if it is loaded (for metrics and tests)."""
        return self._generator.now if self._generator is not None else None

    @property
    def batcher(self) -> Batcher:
        loaded = self._slot.now if self._slot is not None else None
        if loaded is None:
            raise RuntimeError("the inference service has no model loaded")
        return loaded.batcher

    async def wire(self, ctx: ServiceContext, resources: AsyncExitStack) -> Wiring:
        if self._warmup.cache:
            keep_compiled_shapes(ctx.settings.data_dir / "inference" / "xla-cache")
        blobs = open_blob_store(ctx.settings)
        slot = self._slot = ModelSlot("embedding model")
        if self._model is not None:  # weights stay loaded across restarts of this object
            slot.fill(await self._serve(self._model, ctx, resources))
        else:
            work = self._load_and_serve(ctx, resources, blobs, slot)
            in_background(resources, work, "inference-model-load")
        generator: Slot[Served] = Slot("generation model")
        self._generator = generator
        plan = self._generation
        if plan == "settings":
            plan = GenerationPlan.from_settings(ctx.settings)
        if plan is not None:
            work = _load_generator(ctx, resources, blobs, generator, plan)
            in_background(resources, work, "inference-generator-load")
        else:
            generator.fail(RuntimeError("this inference service does not generate"))
        pool = await create_pool(ctx.postgres_url)
        resources.push_async_callback(pool.close)
        receipt_store = ReceiptStore(pool)
        await receipt_store.setup()
        publisher = ctx.publisher(self.name)
        config = ctx.config
        recorder = Recorder(
            blobs, publisher, receipt_store, lambda: bool(config.value(tunables.STORE_INPUTS))
        )
        deps = Deps(slot, blobs, publisher, generator, recorder)
        return Wiring(
            consumers=[
                ctx.runner(inference_projection(deps)),
                ctx.runner(receipt_projection(receipt_store)),
            ],
            grpc=[
                GrpcRegistration(
                    InferenceApi(deps),
                    inference_pb2_grpc.add_InferenceServicer_to_server,
                    GRPC_SERVICE,
                )
            ],
        )

    async def _load_and_serve(
        self, ctx: ServiceContext, resources: AsyncExitStack, blobs: BlobStore, slot: ModelSlot
    ) -> None:
        try:
            async with peer_channel(ctx.settings, "ingest") as channel:
                manifest = await live_version(channel, MINILM_NAME, INGEST_WAIT_S)
            started = time.perf_counter()
            self._model = await load_from_atoms(blobs, manifest)
            seconds = round(time.perf_counter() - started, 2)
            logger.info(
                "MiniLM loaded from its tensor atoms",
                extra={"manifest": manifest, "seconds": seconds},
            )
            slot.fill(await self._serve(self._model, ctx, resources))
        except Exception as exc:
            logger.exception("the model could not be loaded from its atoms")
            slot.fail(exc)

    async def _serve(self, model: MiniLM, ctx: ServiceContext, resources: AsyncExitStack) -> Loaded:
        """The batcher over `model`, retuned live, warmed (first, with `WarmupPlan.wait`) and
        measured."""
        config = ctx.config
        batcher = Batcher(
            model,
            max_batch_size=int(config.value(tunables.MAX_BATCH_SIZE)),
            max_wait_ms=float(config.value(tunables.MAX_WAIT_MS)),
        )
        resources.push_async_callback(batcher.aclose)
        config.watch(tunables.MAX_BATCH_SIZE, lambda v: batcher.update(max_batch_size=int(v)))
        config.watch(tunables.MAX_WAIT_MS, lambda v: batcher.update(max_wait_ms=float(v)))
        warm = _timed_warmup(batcher, self._warmup.select(batcher.shapes), ctx.settle)
        if self._warmup.wait:
            await warm
        else:
            in_background(resources, warm, "inference-warmup").add_done_callback(_log_failure)
        ctx.telemetry.gauge("inference_queue_depth", lambda: float(batcher.stats().queue_depth))
        ctx.telemetry.gauge("inference_batch_size", WindowMeanBatch(batcher))
        collector = BatcherCollector(batcher)
        REGISTRY.register(collector)
        resources.callback(REGISTRY.unregister, collector)
        info = domain.ModelInfo(domain.MODEL_ID, model.version, model.dim, jax.default_backend())
        return Loaded(batcher, info, model.max_seq_length)


async def _load_generator(
    ctx: ServiceContext,
    resources: AsyncExitStack,
    blobs: BlobStore,
    slot: Slot[Served],
    plan: GenerationPlan,
) -> None:
    """The live system SmolLM2 from its atoms into a decoding engine, warmed before it takes
    requests (a call that comes first waits, then compiles nothing)."""
    try:
        async with peer_channel(ctx.settings, "ingest") as channel:
            manifest = await live_version(channel, GENERATION_MODEL, INGEST_WAIT_S)
        started = time.perf_counter()
        model, tokenizer_atom = await load_llama_from_atoms(blobs, manifest)
        engine = Engine(model, slots=plan.slots, cache_len=plan.context)
        resources.push_async_callback(engine.aclose)
        await engine.warmup()
        ctx.settle()
        seconds = round(time.perf_counter() - started, 1)
        logger.info(
            "SmolLM2 loaded from its tensor atoms and warmed",
            extra={"manifest": manifest, "seconds": seconds},
        )
        info = domain.ModelInfo(
            GENERATION_MODEL, manifest, model.config.hidden_size, jax.default_backend()
        )
        slot.fill(Served(engine, info, tokenizer_atom))
    except Exception as exc:
        logger.exception("the generation model could not be loaded from its atoms")
        slot.fail(exc)


async def _timed_warmup(
    batcher: Batcher, shapes: Sequence[Shape], settle: Callable[[], None]
) -> None:
    """The shapes compiled, then settled: their compiled form lives as long as the process."""
    started = time.perf_counter()
    logger.info("inference warm-up started", extra={"shapes": len(shapes)})
    await batcher.warmup(shapes)
    settle()
    seconds = round(time.perf_counter() - started, 1)
    logger.info("inference warm-up done", extra={"shapes": len(shapes), "seconds": seconds})


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        logger.error("inference warm-up failed", exc_info=exc)


class WindowMeanBatch:
    """Texts per batch since the last reading (a telemetry gauge): None when no batch ran."""

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher
        self._seen = (0, 0)  # (texts, batches) at the last reading

    def __call__(self) -> float | None:
        stats = self._batcher.stats()
        texts, batches = stats.texts - self._seen[0], stats.batches - self._seen[1]
        self._seen = (stats.texts, stats.batches)
        return texts / batches if batches else None


BATCH_SIZE_BUCKETS = tuple(2**i for i in range(9))  # 1 .. 256


class BatcherCollector(Collector):
    """Reads Batcher.stats() at scrape time, so the request path pays nothing for metrics."""

    def __init__(self, batcher: Batcher) -> None:
        self._batcher = batcher

    def collect(self) -> Iterable[Metric]:
        stats = self._batcher.stats()
        prefix = "hartonomous_inference"
        yield GaugeMetricFamily(
            f"{prefix}_queue_depth", "Texts waiting for a batch", value=stats.queue_depth
        )
        yield GaugeMetricFamily(
            f"{prefix}_max_batch_size", "Current batch size cap", value=stats.max_batch_size
        )
        yield GaugeMetricFamily(
            f"{prefix}_max_wait_ms", "Current batching wait", value=stats.max_wait_ms
        )
        yield GaugeMetricFamily(
            f"{prefix}_compiled_shapes", "Model shapes compiled", value=stats.compiled_shapes
        )
        yield GaugeMetricFamily(
            f"{prefix}_shapes_to_compile",
            "Shapes the warm-up has still to compile (0: warm)",
            value=stats.shapes_to_compile,
        )
        yield CounterMetricFamily(f"{prefix}_batches", "Batches run", value=stats.batches)
        yield CounterMetricFamily(
            f"{prefix}_model_calls", "Padded model calls run", value=stats.model_calls
        )
        yield CounterMetricFamily(f"{prefix}_texts", "Texts embedded", value=stats.texts)
        sizes = stats.batch_size_histogram
        yield HistogramMetricFamily(
            f"{prefix}_batch_size",
            "Texts per batch",
            buckets=_cumulative(sizes, BATCH_SIZE_BUCKETS),
            sum_value=sum(size * n for size, n in sizes.items()),
        )


def _cumulative(counts: dict[int, int], bounds: Sequence[int]) -> list[tuple[str, float]]:
    """Prometheus buckets (upper bound, observations <= bound) from exact value counts."""
    buckets: list[tuple[str, float]] = [
        (str(bound), sum(n for value, n in counts.items() if value <= bound)) for bound in bounds
    ]
    buckets.append(("+Inf", sum(counts.values())))
    return buckets


service = InferenceService()

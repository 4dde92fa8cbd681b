"""Warm one batcher shape with the persistent compilation cache on, in a fresh process (the
cache is process-wide), and print what JAX's cache reported as JSON.

Usage: python -m tests.support.compile_probe CACHE_DIR
"""

from __future__ import annotations

import asyncio
import collections
import json
import sys
from pathlib import Path

import jax

from services.inference.batching import Batcher
from services.inference.models.minilm import load_minilm
from services.inference.service import keep_compiled_shapes

PREFIX = "/jax/compilation_cache/"


async def warm() -> None:
    async with Batcher(load_minilm(), max_batch_size=1, length_buckets=(16, 256)) as batcher:
        await batcher.warmup([(1, 16)])


def main(cache_dir: Path) -> None:
    seen: collections.Counter[str] = collections.Counter()
    jax.monitoring.register_event_listener(lambda event, **_: seen.update([event]))
    keep_compiled_shapes(cache_dir)
    asyncio.run(warm())
    print(json.dumps({k.removeprefix(PREFIX): n for k, n in seen.items() if k.startswith(PREFIX)}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))

"""A process that writes batches of points to an embedded search store forever, printing each
batch's number once its upsert returned: the victim of the search crash-safety test.

    python -m tests.support.search_writer DATA_DIR [FIRST_BATCH]
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np

from services.search import domain
from services.search.domain import Point
from services.search.vectors.embedded.engine import EmbeddedStore

BATCH = 100
TENANTS = ("acme", "globex")


def batch(number: int) -> list[Point]:
    """The points of batch `number`: always the same ones, so a re-applied batch is a re-delivery.
    Every point has a word of its own (`p<batch>x<i>`) and a vector seeded by its number."""
    points = []
    for i in range(BATCH):
        vector = np.random.default_rng(number * BATCH + i).normal(size=domain.DIM)
        word = f"p{number}x{i}"
        points.append(
            Point(
                domain.point_id(TENANTS[i % 2], f"doc{number}", word, "v1"),
                (vector / np.linalg.norm(vector)).tolist(),
                domain.term_counts(f"{word} shared words batch{number}"),
                {
                    "tenant_id": TENANTS[i % 2],
                    "document_id": f"doc{number}",
                    "atom_id": word,
                    "model_version": "v1",
                },
            )
        )
    return points


async def write(store: EmbeddedStore, number: int) -> None:
    """One step: batch `number`, then (every third step) a delete of half the batch before."""
    await store.upsert(batch(number))
    if number % 3 == 2:  # deletes are writes too: drop every other point of a batch
        kept = [f"p{number - 1}x{i}" for i in range(0, BATCH, 2)]
        await store.delete(f"doc{number - 1}", keep_atoms=kept)


async def main(data_dir: Path, first: int) -> None:
    store = EmbeddedStore(data_dir)
    await store.ensure()
    number = first
    while True:
        await write(store, number)
        print(number, flush=True)
        number += 1


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 0))

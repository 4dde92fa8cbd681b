"""A process that moves every point of an embedded search store to the opposite vector and back,
forever, with compaction at a low threshold, so a kill may land in a compaction: the victim of
the compaction crash test. Prints the number of each finished move.

    python -m tests.support.search_mover DATA_DIR
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import numpy as np

from services.search.domain import Point
from services.search.vectors.embedded.engine import EmbeddedStore
from tests.support.search_writer import batch

BATCHES = 20  # 2,000 points, 1,000 per tenant
COMPACT_MIN_DEAD = 100


def points(flipped: bool) -> list[Point]:
    sign = -1.0 if flipped else 1.0
    return [
        Point(p.id, (sign * np.asarray(p.dense)).tolist(), p.sparse, p.payload)
        for number in range(BATCHES)
        for p in batch(number)
    ]


async def main(data_dir: Path) -> None:
    store = EmbeddedStore(data_dir, compact_min_dead=COMPACT_MIN_DEAD)
    await store.ensure()
    move = 0
    while True:
        await store.upsert(points(flipped=move % 2 == 1))
        print(move, flush=True)
        move += 1


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1])))

"""The embedded store SIGKILLed while it writes: what it acknowledged is there, what it was
writing is all there or not at all, vectors, table and keyword index agree, and the writer
restarted from the interrupted batch (as the log would re-deliver it) converges."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from services.search import domain
from services.search.domain import Filter, Point
from services.search.embedded.store import EmbeddedStore
from tests.support.search_writer import BATCH, batch

REPO = Path(__file__).resolve().parents[3]
ROUNDS = 3


def expected_atoms(number: int, last: int) -> set[str]:
    """Batch `number`'s atoms once batch `last` was acknowledged: the writer keeps every other
    point of batch n-1 after writing batch n when n % 3 == 2."""
    kept = range(0, BATCH, 2) if number + 1 <= last and (number + 1) % 3 == 2 else range(BATCH)
    return {f"p{number}x{i}" for i in kept}


def run_until_killed(data_dir: Path, first: int, rng: random.Random) -> int:
    """Start the writer at batch `first`, kill it mid-flight, return the last acknowledged batch."""
    writer = subprocess.Popen(
        [sys.executable, "-m", "tests.support.search_writer", str(data_dir), str(first)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout is not None
    acknowledged = first - 1
    try:
        for _ in range(rng.randint(2, 6)):
            line = writer.stdout.readline()
            assert line, f"the writer died on its own (exit {writer.poll()})"
            acknowledged = int(line)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=30)
    # Lines printed between the last read and the kill were acknowledged too.
    for line in writer.stdout.read().split():
        acknowledged = int(line)
    return acknowledged


async def check(data_dir: Path, last: int) -> None:
    store = EmbeddedStore(data_dir)
    await store.ensure()
    try:
        stored = {p.payload["atom_id"]: p async for p in store.scan()}
        assert await store.count() == len(stored)
        by_batch: dict[int, set[str]] = {}
        for atom in stored:
            by_batch.setdefault(int(atom[1:].split("x")[0]), set()).add(atom)
        for number in range(last):
            assert by_batch.pop(number, set()) == expected_atoms(number, last), number
        # The batch acknowledged last may have lost half to the delete that followed it, and
        # the next one is all there or absent: a batch is one transaction.
        tail = by_batch.pop(last, set())
        assert tail in (expected_atoms(last, last), expected_atoms(last, last + 1))
        assert by_batch.pop(last + 1, set()) in (set(), expected_atoms(last + 1, last + 1))
        assert not by_batch
        await agree(store, stored, last)
    finally:
        await store.close()


async def agree(store: EmbeddedStore, stored: dict[str, Point], last: int) -> None:
    """Sampled points: exact vectors, found by their own vector and by their own word; sampled
    deleted points: found by neither."""
    rng = random.Random(last)
    written = {p.payload["atom_id"]: p for n in range(last + 2) for p in batch(n)}
    for atom in rng.sample(sorted(stored), 30):
        point = stored[atom]
        np.testing.assert_allclose(point.dense, written[atom].dense, rtol=1e-6, atol=1e-7)
        where = Filter(point.payload["tenant_id"])
        [top] = await store.dense(point.dense, where, 1)
        assert top.id == point.id and top.score > 0.9999
        [hit] = await store.sparse(domain.query_terms(atom), where, 5)
        assert hit.id == point.id
    gone = sorted(set(written) - set(stored))
    for atom in rng.sample(gone, min(20, len(gone))):
        where = Filter(written[atom].payload["tenant_id"])
        assert await store.sparse(domain.query_terms(atom), where, 5) == []
        assert all(
            h.id != written[atom].id for h in await store.dense(written[atom].dense, where, 3)
        )


async def test_kills_during_writes_never_corrupt_the_store(tmp_path: Path) -> None:
    rng = random.Random(11)
    first = 0
    for _ in range(ROUNDS):
        last = run_until_killed(tmp_path, first, rng)
        await check(tmp_path, last)
        first = last + 1  # the interrupted batch is re-delivered
    # A clean finish: re-applying the interrupted batch converges on the exact state.
    store = EmbeddedStore(tmp_path)
    await store.ensure()
    try:
        await store.upsert(batch(first))
        atoms = {p.payload["atom_id"] async for p in store.scan()}
    finally:
        await store.close()
    assert atoms == set().union(*(expected_atoms(n, first) for n in range(first + 1)))

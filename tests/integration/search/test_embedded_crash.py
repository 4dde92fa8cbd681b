"""The embedded store SIGKILLed while it writes: what it acknowledged is there, what it was
writing is, for each tenant, all there or not at all (a tenant's shard commits once per write),
vectors, table and keyword index agree, and the writer restarted from the interrupted batch (as
the log would re-deliver it) converges."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from services.search import domain
from services.search.domain import Filter, Point
from services.search.vectors.embedded.engine import EmbeddedStore
from tests.support.search_mover import points as mover_points
from tests.support.search_writer import BATCH, batch, write

REPO = Path(__file__).resolve().parents[3]
ROUNDS = 3


def expected_atoms(number: int, last: int) -> set[str]:
    """Batch `number`'s atoms once batch `last` was acknowledged: the writer keeps every other
    point of batch n-1 after writing batch n when n % 3 == 2."""
    kept = range(0, BATCH, 2) if number + 1 <= last and (number + 1) % 3 == 2 else range(BATCH)
    return {f"p{number}x{i}" for i in kept}


def kill_mid_flight(args: list[str], rng: random.Random, at_least: int, at_most: int) -> list[int]:
    """Run `python -m <args>`, let it print between `at_least` and `at_most` numbers (each one
    something it finished), SIGKILL it a random moment later; every number it printed."""
    victim = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    assert victim.stdout is not None
    printed = []
    try:
        for _ in range(rng.randint(at_least, at_most)):
            line = victim.stdout.readline()
            assert line, f"{args[0]} died on its own (exit {victim.poll()})"
            printed.append(int(line))
        time.sleep(rng.uniform(0, 0.2))
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=30)
    # Lines printed between the last read and the kill were finished too.
    return printed + [int(line) for line in victim.stdout.read().split()]


def run_until_killed(data_dir: Path, first: int, rng: random.Random) -> int:
    """Start the writer at batch `first`, kill it mid-flight, return the last acknowledged batch."""
    args = ["tests.support.search_writer", str(data_dir), str(first)]
    return kill_mid_flight(args, rng, 2, 6)[-1]


def vectors_files_per_shard(data_dir: Path) -> list[int]:
    return [len(list(shard.glob("vectors*.f32"))) for shard in data_dir.iterdir()]


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
        # The batch acknowledged last may have lost its odd (globex) points to the delete that
        # followed it, and each tenant's part of the next one is all there or absent.
        tail = by_batch.pop(last, set())
        assert tail in (expected_atoms(last, last), expected_atoms(last, last + 1))
        following = expected_atoms(last + 1, last + 1)
        acme = {atom for atom in following if int(atom.split("x")[1]) % 2 == 0}
        assert by_batch.pop(last + 1, set()) in (set(), acme, following - acme, following)
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
        await write(store, first)
        atoms = {p.payload["atom_id"] async for p in store.scan()}
    finally:
        await store.close()
    assert atoms == set().union(*(expected_atoms(n, first) for n in range(first + 1)))


async def test_kills_during_compactions_leave_one_consistent_vectors_file(tmp_path: Path) -> None:
    """Every point moves back and forth between its vector and the opposite one, compacting
    every other move; after each kill every point is at one of the two, found by it, and the
    shard keeps exactly one vectors file."""
    rng = random.Random(5)
    for _ in range(ROUNDS):
        kill_mid_flight(["tests.support.search_mover", str(tmp_path)], rng, 1, 4)
        store = EmbeddedStore(tmp_path)
        await store.ensure()
        try:
            original = {p.id: np.asarray(p.dense) for p in mover_points(flipped=False)}
            stored = {p.id: p async for p in store.scan()}
            assert stored.keys() == original.keys()
            for point_id in rng.sample(sorted(stored), 20):
                point = stored[point_id]
                cosine = float(np.dot(point.dense, original[point_id]))
                assert abs(abs(cosine) - 1) < 1e-5  # the vector or its opposite, never torn
                [top] = await store.dense(point.dense, Filter(point.payload["tenant_id"]), 1)
                assert top.id == point_id
        finally:
            await store.close()
        assert vectors_files_per_shard(tmp_path) == [1, 1]

"""Compiled shapes survive a restart: the second process loads them from the cache."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]


def probe(cache_dir: Path) -> dict[str, int]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.compile_probe", str(cache_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    counts: dict[str, int] = json.loads(done.stdout.splitlines()[-1])
    return counts


def test_a_restart_loads_compiled_shapes_instead_of_compiling(tmp_path: Path) -> None:
    cache = tmp_path / "inference" / "xla-cache"
    first = probe(cache)
    assert first["cache_misses"] >= 1
    assert "cache_hits" not in first
    assert any(p.name.startswith("jit_embed_batch-") for p in cache.iterdir())

    second = probe(cache)
    assert second["cache_hits"] == first["cache_misses"]
    assert "cache_misses" not in second

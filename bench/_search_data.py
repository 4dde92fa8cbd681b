"""Corpora for the search benchmarks (bench/search.py, bench/search_congruence.py).

Synthetic: unit vectors and Zipf-distributed words, generated batch by batch from a seed, so a
million points never sit in memory at once (latency does not depend on what vectors mean).
Real text: paragraphs of the Python standard library's docstrings (at least 10k, the same on
every machine with this Python), embedded by our own MiniLM once and cached under
bench/results/cache, for recall on vectors that cluster the way real embeddings do."""

from __future__ import annotations

import ast
import hashlib
import sysconfig
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench.common import RESULTS
from services.search import domain
from services.search.domain import Point, SparseVector

TENANTS = 10  # a tenant filter selects 1 in 10 points
BATCH = 2_000
VOCABULARY = 20_000
WORDS_PER_CHUNK = 80
QUERY_WORDS = 3
SEED = 20_260_521

Vectors = npt.NDArray[np.float32]

_RANKS = np.arange(1, VOCABULARY + 1, dtype=np.float64)
WORD_P = (1 / _RANKS) / (1 / _RANKS).sum()
# Words are "w<rank>"; hashing each once keeps a million points' terms cheap to make.
_TERM_INDEX = np.array([domain.term_index(f"w{w}") for w in range(VOCABULARY)], np.uint32)


def payload(i: int) -> dict[str, str]:
    return {
        "tenant_id": f"t{i % TENANTS}",
        "document_id": f"d{i}",
        "atom_id": f"a{i}",
        "model_version": "bench",
    }


def unit_rows(rng: np.random.Generator, n: int) -> Vectors:
    rows = rng.normal(size=(n, domain.DIM)).astype(np.float32)
    unit: Vectors = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


@dataclass(frozen=True)
class Batch:
    first: int
    vectors: Vectors
    points: list[Point]


def synthetic(n: int) -> Iterator[Batch]:
    """The points 0..n-1 of the synthetic corpus, BATCH at a time; point i is tenant i % 10."""
    for first in range(0, n, BATCH):
        yield _batch(first, min(BATCH, n - first))


def points(first: int, count: int) -> list[Point]:
    """`count` synthetic points from point `first` on (extra ones appended to a corpus)."""
    return _batch(first, count).points


def _batch(first: int, size: int) -> Batch:
    rng = np.random.default_rng((SEED, first))
    vectors = unit_rows(rng, size)
    words = rng.choice(VOCABULARY, size=(size, WORDS_PER_CHUNK), p=WORD_P)
    made = []
    for row in range(size):
        terms, counts = np.unique(_TERM_INDEX[words[row]], return_counts=True)
        sparse = SparseVector(tuple(terms.tolist()), tuple(counts.astype(float).tolist()))
        i = first + row
        made.append(Point(str(uuid.UUID(int=i)), vectors[row].tolist(), sparse, payload(i)))
    return Batch(first, vectors, made)


def query_terms(rng: np.random.Generator) -> SparseVector:
    words = rng.choice(VOCABULARY, size=QUERY_WORDS, p=WORD_P)
    return domain.query_terms(" ".join(f"w{w}" for w in words))


# ---------------------------------------------------------------------------------------
# Real text

MIN_CHARS = 80
MAX_CHARS = 1_000
REAL_CHUNKS = 10_000


def stdlib_paragraphs(limit: int) -> list[str]:
    """The first `limit` distinct docstring paragraphs of the standard library, in a stable
    order (module paths sorted)."""
    seen: dict[str, None] = {}
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        if "test" in path.parts or "idlelib" in path.parts:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                for paragraph in (ast.get_docstring(node) or "").split("\n\n"):
                    text = " ".join(paragraph.split())
                    if MIN_CHARS <= len(text) <= MAX_CHARS:
                        seen.setdefault(text)
        if len(seen) >= limit:
            break
    return list(seen)[:limit]


@dataclass(frozen=True)
class RealText:
    texts: list[str]
    vectors: Vectors
    model_version: str


def real_text() -> RealText:
    """REAL_CHUNKS paragraphs and their MiniLM vectors (embedded once, then read from cache)."""
    from services.inference.models.minilm import load_minilm

    texts = stdlib_paragraphs(REAL_CHUNKS)
    if len(texts) < REAL_CHUNKS:
        raise RuntimeError(f"only {len(texts)} docstring paragraphs; the bench needs {REAL_CHUNKS}")
    model = load_minilm()
    digest = hashlib.sha256("\n".join([model.version, *texts]).encode()).hexdigest()[:16]
    cache = RESULTS / "cache" / f"stdlib-{digest}.npy"
    if cache.exists():
        vectors = np.load(cache)
    else:
        print(f"search: embedding {len(texts)} docstring paragraphs (cached after)", flush=True)
        vectors = model.encode(texts)
        cache.parent.mkdir(parents=True, exist_ok=True)
        np.save(cache, vectors)
    return RealText(texts, vectors, model.version)

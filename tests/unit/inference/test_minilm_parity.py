"""all-MiniLM-L6-v2 in JAX against embeddings produced by sentence-transformers."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

from services.inference.models.minilm import MiniLM

REFERENCE = (
    Path(__file__).resolve().parents[3].parent / "shared/reference/minilm_reference_public.json"
)

# float32 on CPU must match torch's float32 closely; on a GPU attention runs in bfloat16
# (cuDNN), so only a looser agreement is meaningful there.
MIN_COSINE, MAX_ABS_DIFF = (0.99999, 1e-4) if jax.default_backend() == "cpu" else (0.999, 5e-3)


def test_matches_sentence_transformers(model: MiniLM) -> None:
    if not REFERENCE.exists():
        pytest.skip(f"reference embeddings not found at {REFERENCE}")
    reference = json.loads(REFERENCE.read_text())
    texts = [case["text"] for case in reference["cases"]]
    expected = np.array([case["embedding"] for case in reference["cases"]], dtype=np.float32)
    assert reference["dim"] == model.dim

    got = model.encode(texts)

    assert got.dtype == np.float32
    assert got.shape == expected.shape
    cosine = (got * expected).sum(axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(expected, axis=1)
    )
    max_abs_diff = np.abs(got - expected).max(axis=1)
    for text, cos, diff in zip(texts, cosine, max_abs_diff, strict=True):
        assert cos >= MIN_COSINE, f"cosine {cos} for {text[:40]!r}"
        assert diff <= MAX_ABS_DIFF, f"max abs diff {diff} for {text[:40]!r}"

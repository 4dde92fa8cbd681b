"""The attention kernels against a direct numpy formulation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from services.inference.kernels.attention import attention, cudnn_attention, xla_attention

B, T, N, H = 2, 16, 3, 32


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = np.zeros_like(q)
    for b in range(B):
        keys = mask[b].astype(bool)
        for n in range(N):
            logits = q[b, :, n] @ k[b, keys, n].T / np.sqrt(H)
            weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
            weights /= weights.sum(axis=-1, keepdims=True)
            out[b, :, n] = weights @ v[b, keys, n]
    return out


def inputs(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((B, T, N, H), dtype=np.float32) for _ in range(3))
    mask = np.zeros((B, T), dtype=bool)
    mask[0, :] = True
    mask[1, :5] = True
    return q, k, v, mask


def run(kernel: object, *arrays: np.ndarray) -> np.ndarray:
    assert callable(kernel)
    return np.asarray(kernel(*(jnp.asarray(a) for a in arrays)))


def test_xla_matches_reference_with_padding() -> None:
    q, k, v, mask = inputs(0)
    got = run(xla_attention, q, k, v, mask)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, reference(q, k, v, mask), atol=1e-5)


def test_xla_ignores_padded_keys() -> None:
    q, k, v, mask = inputs(1)
    noisy_k, noisy_v = k.copy(), v.copy()
    noisy_k[1, 5:] = 1e3
    noisy_v[1, 5:] = -1e3
    np.testing.assert_allclose(
        run(xla_attention, q, noisy_k, noisy_v, mask), run(xla_attention, q, k, v, mask), atol=1e-6
    )


def test_xla_fully_masked_row_stays_finite() -> None:
    q, k, v, _ = inputs(2)
    assert np.isfinite(run(xla_attention, q, k, v, np.zeros((B, T), dtype=bool))).all()


def test_dispatch_follows_the_backend() -> None:
    q, k, v, mask = inputs(3)
    expected = cudnn_attention if jax.default_backend() == "gpu" else xla_attention
    np.testing.assert_array_equal(run(attention, q, k, v, mask), run(expected, q, k, v, mask))


@pytest.mark.skipif(jax.default_backend() != "gpu", reason="cuDNN attention needs a GPU")
def test_cudnn_matches_reference_in_bfloat16() -> None:
    q, k, v, mask = inputs(4)
    got = run(cudnn_attention, q, k, v, mask)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, reference(q, k, v, mask), atol=3e-2)

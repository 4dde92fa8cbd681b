"""Attention kernel: the throughput of `services.inference.kernels.attention` at MiniLM's
head shape (12 heads of 32), against the same device's measured matrix-product peak in the
kernel's own precision: bfloat16 on a GPU (cuDNN's fused kernel), float32 on a CPU (XLA).
The ratio is the fraction of that peak the kernel reaches.

FLOPs are counted as dense attention over the padded shape (4 * batch * heads * seq^2 *
head_dim), the convention of FlashAttention's reports; a quarter of the keys are padding,
which cuDNN skips and XLA does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from bench.common import Metric, median, write
from services.inference.kernels.attention import attention

HEADS, HEAD_DIM = 12, 32
SEQ = 128
REPS = 20


def device_setup() -> tuple[int, int, jnp.dtype]:
    """(attention batch, square matmul size, matmul dtype) for this backend."""
    if jax.default_backend() == "gpu":
        return 256, 8192, jnp.dtype(jnp.bfloat16)
    return 32, 2048, jnp.dtype(jnp.float32)


def seconds(fn: Callable[[], jax.Array]) -> float:
    """Median wall time of one call, after a compiling call."""
    fn().block_until_ready()
    times = []
    for _ in range(REPS):
        started = time.perf_counter()
        fn().block_until_ready()
        times.append(time.perf_counter() - started)
    return median(times)


def matmul_peak(size: int, dtype: jnp.dtype) -> float:
    """TFLOP/s of one square matrix product: the device's practical peak."""
    rng = np.random.default_rng(0)
    a, b = (jnp.asarray(rng.standard_normal((size, size)), dtype) for _ in range(2))
    product = jax.jit(jnp.matmul)
    return 2 * size**3 / seconds(lambda: product(a, b)) / 1e12


def attention_rate(batch: int) -> float:
    """TFLOP/s of the attention kernel on [batch, SEQ, HEADS, HEAD_DIM] with right padding."""
    rng = np.random.default_rng(1)
    q, k, v = (
        jnp.asarray(rng.standard_normal((batch, SEQ, HEADS, HEAD_DIM)), jnp.float32)
        for _ in range(3)
    )
    lengths = rng.integers(SEQ // 2, SEQ + 1, batch)
    mask = jnp.asarray(np.arange(SEQ)[None, :] < lengths[:, None])
    kernel = jax.jit(attention)
    return 4 * batch * HEADS * SEQ**2 * HEAD_DIM / seconds(lambda: kernel(q, k, v, mask)) / 1e12


def main() -> None:
    batch, size, dtype = device_setup()
    backend = jax.default_backend()
    peak = matmul_peak(size, dtype)
    rate = attention_rate(batch)
    metric = Metric(
        f"attention {batch}x{SEQ}, {HEADS}x{HEAD_DIM} heads ({backend})",
        "TFLOP/s",
        rate,
        f"{dtype.name} matmul {size}^3",
        peak,
    )
    print(f"wrote {write('attention', [metric])}", flush=True)


if __name__ == "__main__":
    main()

"""Masked scaled dot-product attention: the one place attention is implemented.

Bidirectional attention over padded sequences (the encoder): on CPU the plain XLA
formulation in float32; on a GPU cuDNN's fused flash attention, which only takes
half-precision inputs, so q/k/v are cast to bfloat16 around the call and the result is cast
back. Causal attention against a KV cache (the decoder's prefill) and one new token's
attention against a window of it (the decoder's decode step): XLA, float32.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

MASKED_BIAS = -1e30
"""Added to the logits of padding keys (see xla_attention)."""


def attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    """Bidirectional attention over right-padded sequences.

    q, k, v: [batch, seq, heads, head_dim]; mask: [batch, seq], true for real tokens
    (padding only at the end of a row). Returns [batch, seq, heads, head_dim] in q's dtype.
    The backend is chosen at trace time, so a jitted caller compiles one path.
    """
    if jax.default_backend() == "gpu":
        return cudnn_attention(q, k, v, mask)
    return xla_attention(q, k, v, mask)


def xla_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    # Heads moved next to the batch axis first: XLA then runs both products as plain batched
    # matmuls over [batch, heads], 3-7% faster end to end on CPU than einsums over the
    # [batch, seq, heads, head_dim] layout, which transpose inside every product.
    q, k, v = (t.swapaxes(1, 2) for t in (q, k, v))
    # The scale goes on q and the softmax's division after the second product: both then
    # touch [.., seq, head_dim] instead of [.., seq, seq], ~20% less time in attention.
    q = q * (q.shape[-1] ** -0.5)
    # Padding is masked by adding a large negative bias (as HF BERT does), not by a select:
    # XLA's CPU backend then runs both products and the softmax as one fused kernel instead
    # of writing the masked [seq, seq] scores out between them, 2-6% faster end to end. The
    # bias is finite so a row with no real key stays finite (not NaN); a logit plus -1e30
    # rounds to -1e30, whose exp is exactly 0, so the output is the select's to the bit.
    bias = jnp.where(mask, 0.0, MASKED_BIAS).astype(jnp.float32)[:, None, None, :]
    # Softmax in float32 whatever the input dtype.
    logits = jnp.matmul(q, k.swapaxes(-1, -2), preferred_element_type=jnp.float32) + bias
    scores = jnp.exp(logits - logits.max(axis=-1, keepdims=True))
    context = jnp.matmul(scores.astype(v.dtype), v, preferred_element_type=jnp.float32)
    context = context / scores.sum(axis=-1, keepdims=True)
    return context.astype(v.dtype).swapaxes(1, 2)


def cudnn_attention(q: jax.Array, k: jax.Array, v: jax.Array, mask: jax.Array) -> jax.Array:
    # cuDNN expresses right padding as per-row key lengths, which skips the padded blocks
    # instead of materialising a [batch, heads, seq, seq] mask.
    kv_lengths = mask.sum(axis=-1, dtype=jnp.int32)
    out = jax.nn.dot_product_attention(
        q.astype(jnp.bfloat16),
        k.astype(jnp.bfloat16),
        v.astype(jnp.bfloat16),
        key_value_seq_lengths=kv_lengths,
        implementation="cudnn",
    )
    return out.astype(q.dtype)


def cached_attention(
    q: jax.Array, k_cache: jax.Array, v_cache: jax.Array, positions: jax.Array
) -> jax.Array:
    """Causal grouped-query attention of new tokens against a KV cache that already holds
    them.

    q: [batch, T, heads, head_dim] at `positions` [batch, T]; k_cache, v_cache: [batch,
    kv_heads, len, head_dim]; a query attends to cache positions up to its own (slots past it hold
    nothing yet, or padding). Query head h reads kv head h // (heads // kv_heads), as
    llama.cpp and Hugging Face group them. Returns [batch, T, heads, head_dim] float32.
    """
    batch, seq, heads, dim = q.shape
    kv_heads, length = k_cache.shape[1], k_cache.shape[2]
    group = heads // kv_heads
    # [batch, kv, group * T, d]: each kv head's queries as one matmul against its keys.
    grouped = q.reshape(batch, seq, kv_heads, group, dim).transpose(0, 2, 3, 1, 4)
    grouped = grouped.reshape(batch, kv_heads, group * seq, dim) * (dim**-0.5)
    logits = jnp.matmul(grouped, k_cache.swapaxes(-1, -2), preferred_element_type=jnp.float32)
    visible = jnp.arange(length)[None, None, :] <= positions[:, :, None]  # [batch, T, len]
    visible = jnp.tile(visible, (1, group, 1))[:, None]  # [batch, 1, group * T, len]
    logits = jnp.where(visible, logits, -jnp.inf)
    scores = jax.nn.softmax(logits, axis=-1)
    context = jnp.matmul(scores, v_cache, preferred_element_type=jnp.float32)
    context = context.reshape(batch, kv_heads, group, seq, dim).transpose(0, 3, 1, 2, 4)
    return context.reshape(batch, seq, heads, dim)


def decode_attention(
    q: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    k_new: jax.Array,
    v_new: jax.Array,
    positions: jax.Array,
) -> jax.Array:
    """One new token per row against the cache before it and against itself.

    q: [batch, heads, head_dim] at `positions` [batch]; k_cache, v_cache: [batch, kv_heads,
    window, head_dim], the first `window` cache positions (a row reads those before its
    position: the rest hold nothing yet, or another length's padding); k_new, v_new: [batch,
    kv_heads, head_dim], the new token's own key and value, not yet in the cache. Grouped as
    cached_attention. Returns [batch, heads, head_dim] float32.

    The window is what makes a decode step cheap: attention reads window x batch keys and
    values per layer, not the whole cache (8 rows of 1024 positions cost as much to read as
    the weights). A masked position adds an exact 0 to every sum, so the result does not
    depend on the window (tests/unit/inference/test_decoding.py checks it to the bit).
    """
    batch, heads, dim = q.shape
    kv_heads, window = k_cache.shape[1], k_cache.shape[2]
    grouped = q.reshape(batch, kv_heads, heads // kv_heads, dim) * (dim**-0.5)
    cached = jnp.einsum("bkgd,bkwd->bkgw", grouped, k_cache)
    before = jnp.arange(window)[None, :] < positions[:, None]  # [batch, window]
    cached = jnp.where(before[:, None, None, :], cached, MASKED_BIAS)
    own = jnp.einsum("bkgd,bkd->bkg", grouped, k_new)[..., None]
    top = jnp.maximum(cached.max(axis=-1, keepdims=True), own)
    cached_scores, own_score = jnp.exp(cached - top), jnp.exp(own - top)
    context = jnp.einsum("bkgw,bkwd->bkgd", cached_scores, v_cache)
    context = context + own_score * v_new[:, :, None, :]
    context = context / (cached_scores.sum(axis=-1, keepdims=True) + own_score)
    return context.reshape(batch, heads, dim)

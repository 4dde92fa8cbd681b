"""A Llama-architecture decoder (SmolLM2-135M-Instruct): pure JAX functions over a params
pytree, in the style of minilm.py. Weights come from a GGUF file's tensors (dequantized to
float32, models/ggml.py), read back from their tensor atoms.

The block: RMSNorm -> grouped-query attention with rotary position embeddings -> residual;
RMSNorm -> SwiGLU MLP -> residual; a final RMSNorm and the output projection tied to the
token embeddings (the GGUF has no `output.weight`).

Rotary embeddings: llama.cpp's GGUF conversion permutes the rows of the q and k projections
(convert_hf_to_gguf.py, `permute`: per head, the rows of the first and second halves are
interleaved) so that ggml's "normal" rope, which rotates *adjacent* pairs (x[2i], x[2i+1]) by
theta_i = base^(-2i/head_dim), gives what Hugging Face's rotate_half (pairs i and i + d/2)
gives on the unpermuted weights. So on GGUF weights rope rotates adjacent pairs; applied as
rotate_half it would scramble every head.

The KV cache is preallocated, [layers, batch, kv_heads, cache_len, head_dim] for k and for v
(the layout attention reads without a transpose);
row b of a call writes its T new positions start[b] .. start[b] + T - 1 and attends to every
cached position up to its own (causal): `forward`, which prefills a prompt (T = its length
bucket). `decode_step` adds one token per row and reads only the window of the cache that
holds positions yet (at 8 rows and a 256-position window, 50 ms a step against 222 ms for
`forward` at T = 1 over a 1024-position cache: docs/performance.md)."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from services.inference.kernels.attention import cached_attention, decode_attention

Params = dict[str, Any]
"""{"embed": [vocab, hidden], "norm": [hidden], "layers": {...}} with each layer leaf
stacked over the layer axis (one lax.scan over the layers)."""


@dataclass(frozen=True)
class LlamaConfig:
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    rope_base: float
    rms_eps: float
    context_length: int

    @classmethod
    def from_gguf(cls, metadata: dict[str, Any]) -> LlamaConfig:
        arch = metadata["general.architecture"]
        if arch != "llama":
            raise ValueError(f"not a llama model: general.architecture is {arch!r}")

        def key(name: str) -> Any:
            return metadata[f"llama.{name}"]

        hidden, heads = int(key("embedding_length")), int(key("attention.head_count"))
        head_dim = int(metadata.get("llama.rope.dimension_count", hidden // heads))
        if head_dim * heads != hidden:
            raise ValueError("partial rotary embeddings are not supported")
        return cls(
            vocab_size=len(metadata["tokenizer.ggml.tokens"]),
            hidden_size=hidden,
            num_layers=int(key("block_count")),
            num_heads=heads,
            num_kv_heads=int(key("attention.head_count_kv")),
            head_dim=head_dim,
            intermediate_size=int(key("feed_forward_length")),
            rope_base=float(key("rope.freq_base")),
            rms_eps=float(key("attention.layer_norm_rms_epsilon")),
            context_length=int(key("context_length")),
        )


def params_from(tensors: dict[str, np.ndarray], config: LlamaConfig) -> Params:
    """GGUF tensors by name (numpy order: linear weights [out, in]) -> our pytree, linear
    weights as [in, out] for x @ w."""

    def layer(i: int) -> Params:
        def w(name: str) -> np.ndarray:
            return tensors[f"blk.{i}.{name}.weight"]

        return {
            "attn_norm": w("attn_norm"),
            "q": w("attn_q").T,
            "k": w("attn_k").T,
            "v": w("attn_v").T,
            "o": w("attn_output").T,
            "mlp_norm": w("ffn_norm"),
            "gate": w("ffn_gate").T,
            "up": w("ffn_up").T,
            "down": w("ffn_down").T,
        }

    layers = [layer(i) for i in range(config.num_layers)]
    embed = tensors["token_embd.weight"]
    if "output.weight" in tensors and not np.array_equal(tensors["output.weight"], embed):
        raise ValueError("an untied output projection is not supported")
    params = {
        "embed": embed,
        "norm": tensors["output_norm.weight"],
        "layers": {k: np.stack([layer[k] for layer in layers]) for k in layers[0]},
    }
    on_device: Params = jax.tree.map(jnp.asarray, params)
    return on_device


def empty_cache(config: LlamaConfig, batch: int, length: int) -> tuple[jax.Array, jax.Array]:
    shape = (config.num_layers, batch, config.num_kv_heads, length, config.head_dim)
    return jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32)


def rms_norm(x: jax.Array, weight: jax.Array, eps: float) -> jax.Array:
    return x * jax.lax.rsqrt(jnp.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x: jax.Array, positions: jax.Array, base: float) -> jax.Array:
    """Rotate adjacent pairs of x [batch, seq, heads, head_dim] by position (see the module
    docstring for why adjacent)."""
    half = x.shape[-1] // 2
    inv_freq = base ** (-jnp.arange(half, dtype=jnp.float32) * 2 / x.shape[-1])
    angles = positions[..., None].astype(jnp.float32) * inv_freq  # [batch, seq, half]
    cos, sin = jnp.cos(angles)[:, :, None, :], jnp.sin(angles)[:, :, None, :]
    pairs = x.reshape(*x.shape[:-1], half, 2)
    even, odd = pairs[..., 0], pairs[..., 1]
    rotated = jnp.stack([even * cos - odd * sin, even * sin + odd * cos], axis=-1)
    return rotated.reshape(x.shape)


def attention_inputs(
    layer: Params, x: jax.Array, positions: jax.Array, config: LlamaConfig
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Queries [batch, T, heads, head_dim] and keys and values [batch, T, kv_heads,
    head_dim] of x [batch, T, hidden] at `positions`, rotated."""
    batch, seq, _ = x.shape
    h = rms_norm(x, layer["attn_norm"], config.rms_eps)
    q = (h @ layer["q"]).reshape(batch, seq, config.num_heads, config.head_dim)
    k = (h @ layer["k"]).reshape(batch, seq, config.num_kv_heads, config.head_dim)
    v = (h @ layer["v"]).reshape(batch, seq, config.num_kv_heads, config.head_dim)
    return rope(q, positions, config.rope_base), rope(k, positions, config.rope_base), v


def block_output(layer: Params, x: jax.Array, context: jax.Array, config: LlamaConfig) -> jax.Array:
    """The rest of the block after attention: output projection, residual, SwiGLU MLP,
    residual. x [..., hidden], context [..., heads * head_dim]."""
    x = x + context @ layer["o"]
    h = rms_norm(x, layer["mlp_norm"], config.rms_eps)
    out: jax.Array = x + (jax.nn.silu(h @ layer["gate"]) * (h @ layer["up"])) @ layer["down"]
    return out


def decoder_layer(
    layer: Params,
    x: jax.Array,
    positions: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    config: LlamaConfig,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One block over x [batch, T, hidden] at `positions`; this layer's cache [batch,
    kv_heads, len, head_dim] gets the T new keys and values at those positions."""
    batch, seq, _ = x.shape
    q, k, v = attention_inputs(layer, x, positions, config)
    rows, heads = jnp.arange(batch)[:, None, None], jnp.arange(config.num_kv_heads)[None, :, None]
    at = (rows, heads, positions[:, None, :])  # [batch, kv, T] cache slots
    k_cache = k_cache.at[at].set(k.swapaxes(1, 2))
    v_cache = v_cache.at[at].set(v.swapaxes(1, 2))
    context = cached_attention(q, k_cache, v_cache, positions)
    return block_output(layer, x, context.reshape(batch, seq, -1), config), k_cache, v_cache


def decode_stack(
    params: Params,
    tokens: jax.Array,
    start: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    config: LlamaConfig,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The last layer's output [batch, T, hidden] for tokens at positions start[b] + t, and
    the updated cache."""
    positions = start[:, None] + jnp.arange(tokens.shape[1], dtype=jnp.int32)[None, :]
    x = params["embed"][tokens]

    # The caches ride in the loop's carry, each layer updating its own slice in place: as
    # scanned inputs and outputs they would be copied whole at every call.
    def step(i: jax.Array, carry: tuple[jax.Array, jax.Array, jax.Array]) -> Any:
        x, k_all, v_all = carry
        layer = jax.tree.map(lambda leaf: leaf[i], params["layers"])
        x, k, v = decoder_layer(layer, x, positions, k_all[i], v_all[i], config)
        return x, k_all.at[i].set(k), v_all.at[i].set(v)

    x, k_cache, v_cache = jax.lax.fori_loop(0, config.num_layers, step, (x, k_cache, v_cache))
    return x, k_cache, v_cache


def output_logits(params: Params, hidden: jax.Array, config: LlamaConfig) -> jax.Array:
    """Final norm, then the output projection tied to the token embeddings."""
    logits: jax.Array = rms_norm(hidden, params["norm"], config.rms_eps) @ params["embed"].T
    return logits


@functools.partial(jax.jit, static_argnames="config", donate_argnames=("k_cache", "v_cache"))
def forward(
    params: Params,
    tokens: jax.Array,
    start: jax.Array,
    last: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    config: LlamaConfig,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """tokens [batch, T] at positions start[b] + t; returns the logits [batch, vocab] at
    position index last[b] of each row (the row's last real token), and the updated cache."""
    x, k_cache, v_cache = decode_stack(params, tokens, start, k_cache, v_cache, config)
    hidden = jnp.take_along_axis(x, last[:, None, None], axis=1)[:, 0]
    return output_logits(params, hidden, config), k_cache, v_cache


@functools.partial(
    jax.jit, static_argnames=("config", "window"), donate_argnames=("k_cache", "v_cache")
)
def decode_step(
    params: Params,
    tokens: jax.Array,
    positions: jax.Array,
    k_cache: jax.Array,
    v_cache: jax.Array,
    config: LlamaConfig,
    window: int,
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One new token per row: tokens [rows] at positions [rows] into the first `rows` rows of
    the cache [layers, batch >= rows, kv_heads, len, head_dim], attending to the first
    `window` positions (window > every position); returns the next logits [rows, vocab] and
    the updated cache.

    The serving loop's step, cheaper than `forward` at T = 1: each layer reads only its
    [rows, window] corner of the cache, and the new keys and values go into the cache once,
    after the last layer, instead of being written into a layer's slice before attention
    reads it back."""
    rows = tokens.shape[0]
    x = params["embed"][tokens][:, None]  # [rows, 1, hidden]
    at = positions[:, None]
    corner = (1, rows, config.num_kv_heads, window, config.head_dim)

    def layer_step(x: jax.Array, scanned: tuple[Params, jax.Array]) -> Any:
        layer, i = scanned
        k_seen = jax.lax.dynamic_slice(k_cache, (i, 0, 0, 0, 0), corner)[0]
        v_seen = jax.lax.dynamic_slice(v_cache, (i, 0, 0, 0, 0), corner)[0]
        q, k, v = attention_inputs(layer, x, at, config)
        k, v = k[:, 0], v[:, 0]  # [rows, kv_heads, head_dim]
        context = decode_attention(q[:, 0], k_seen, v_seen, k, v, positions)
        return block_output(layer, x, context.reshape(rows, 1, -1), config), (k, v)

    layer_ids = jnp.arange(config.num_layers)
    x, (k_new, v_new) = jax.lax.scan(layer_step, x, (params["layers"], layer_ids))
    row_ids = jnp.arange(rows)
    # k_new [layers, rows, kv_heads, head_dim] -> cache[:, row, :, position[row], :]
    k_cache = k_cache.at[:, row_ids, :, positions, :].set(k_new.swapaxes(0, 1))
    v_cache = v_cache.at[:, row_ids, :, positions, :].set(v_new.swapaxes(0, 1))
    return output_logits(params, x[:, 0], config), k_cache, v_cache


@functools.partial(jax.jit, static_argnames="config")
def every_position(params: Params, tokens: jax.Array, config: LlamaConfig) -> jax.Array:
    """The logits [T, vocab] after each prefix of one sequence [1, T] (a fresh cache): what
    the model predicts at every position, for checking it against a reference."""
    k, v = empty_cache(config, 1, tokens.shape[1])
    x, _, _ = decode_stack(params, tokens, jnp.zeros((1,), jnp.int32), k, v, config)
    return output_logits(params, x[0], config)

"""The SmolLM2 decoder: GGML blocks decode as ggml's reference does, rope on GGUF's permuted
weights equals Hugging Face's rotate_half on the original ones, the KV cache gives the same
logits as a full forward pass, and the model answers with the tokenizer and chat template of
its own GGUF metadata. (Parity with llama.cpp token for token: test_llama_parity.py.)"""

from __future__ import annotations

import struct

import jax.numpy as jnp
import numpy as np
import pytest

from hartonomous.modelfiles import smollm2_gguf
from services.inference.models import llama
from services.inference.models.ggml import dequantize
from services.inference.models.llama_model import LlamaModel, load_gguf


@pytest.fixture(scope="module")
def smollm2() -> LlamaModel:
    return load_gguf(smollm2_gguf())


def test_q4_1_and_q8_0_blocks_decode_as_ggml_does() -> None:
    d, m = np.float16(0.5), np.float16(-1.0)
    nibbles = bytes((lo | (hi << 4)) for lo, hi in zip(range(16), range(15, -1, -1), strict=True))
    q4_1 = d.tobytes() + m.tobytes() + nibbles
    expected = [0.5 * q - 1.0 for q in [*range(16), *range(15, -1, -1)]]
    assert dequantize("Q4_1", (32,), q4_1).tolist() == expected
    q8_0 = np.float16(0.25).tobytes() + struct.pack("<32b", *range(-16, 16))
    assert dequantize("Q8_0", (32,), q8_0).tolist() == [0.25 * q for q in range(-16, 16)]
    assert dequantize("F32", (2, 1), struct.pack("<2f", 1.5, -2.0)).shape == (1, 2)


def test_rope_on_gguf_weights_is_rotate_half_on_the_original_ones() -> None:
    """llama.cpp's conversion permutes q/k rows per head (first and second halves
    interleaved); adjacent-pair rope on permuted vectors is rotate_half rope on the original
    vectors, permuted the same way."""
    rng = np.random.default_rng(0)
    heads, dim = 3, 8
    x = rng.standard_normal((1, 5, heads, dim)).astype(np.float32)
    positions = jnp.arange(5)[None, :]
    # HF's rotate_half rope.
    inv = 100000.0 ** (-np.arange(dim // 2) * 2 / dim)
    angles = np.asarray(positions)[..., None] * inv
    cos = np.concatenate([np.cos(angles)] * 2, -1)[:, :, None]
    sin = np.concatenate([np.sin(angles)] * 2, -1)[:, :, None]
    rotate_half = np.concatenate([-x[..., dim // 2 :], x[..., : dim // 2]], -1)
    hf = x * cos + rotate_half * sin
    # The conversion's permutation of one head's rows: [0, d/2, 1, d/2 + 1, ...].
    order = np.stack([np.arange(dim // 2), np.arange(dim // 2) + dim // 2], 1).reshape(-1)
    ours = np.asarray(llama.rope(jnp.asarray(x[..., order]), positions, 100000.0))
    np.testing.assert_allclose(ours, hf[..., order], atol=1e-5)


def test_the_cache_gives_the_logits_of_a_full_forward_pass(smollm2: LlamaModel) -> None:
    ids = smollm2.tokenizer.encode("The ledger is the source of truth, and every event")
    config, params = smollm2.config, smollm2.params
    full_k, full_v = llama.empty_cache(config, 1, 64)
    tokens = jnp.asarray([ids], jnp.int32)
    zero = jnp.zeros((1,), jnp.int32)
    last = jnp.asarray([len(ids) - 1], jnp.int32)
    full, full_k, _ = llama.forward(params, tokens, zero, last, full_k, full_v, config)
    # The same tokens as a padded prefill of all but the last, then one decode step.
    k, v = llama.empty_cache(config, 1, 64)
    padded = jnp.asarray([ids[:-1] + [0] * 7], jnp.int32)
    before_last = jnp.asarray([len(ids) - 2], jnp.int32)
    _, k, v = llama.forward(params, padded, zero, before_last, k, v, config)
    step = jnp.asarray([[ids[-1]]], jnp.int32)
    position = jnp.asarray([len(ids) - 1], jnp.int32)
    incremental, _, _ = llama.forward(params, step, position, zero, k.copy(), v.copy(), config)
    np.testing.assert_allclose(np.asarray(incremental), np.asarray(full), atol=2e-4)
    stepped, k, v = llama.decode_step(params, step[:, 0], position, k, v, config, 32)
    np.testing.assert_allclose(np.asarray(stepped), np.asarray(full), atol=2e-4)
    # The step wrote the token's keys where the next one reads them.
    seen = slice(0, len(ids))
    np.testing.assert_allclose(
        np.asarray(k[:, :, :, seen]), np.asarray(full_k[:, :, :, seen]), atol=1e-4
    )


def test_a_decode_step_does_not_depend_on_its_window(smollm2: LlamaModel) -> None:
    """Bit for bit: the window a step attends over depends on the other sequences in the
    batch, and a receipt's re-run must not."""
    config, params = smollm2.config, smollm2.params
    rows = 4
    prompts = ["The ledger is", "Every event on the log", "A model is a set of atoms", "Why"]
    ids = [smollm2.tokenizer.encode(p) for p in prompts]
    longest = max(map(len, ids))
    padded = jnp.asarray([i + [0] * (longest - len(i)) for i in ids], jnp.int32)
    zero = jnp.zeros((rows,), jnp.int32)
    last = jnp.asarray([len(i) - 1 for i in ids], jnp.int32)
    k, v = llama.empty_cache(config, rows, 384)
    first, k, v = llama.forward(params, padded, zero, last, k, v, config)
    tokens = jnp.asarray(np.asarray(first).argmax(axis=-1), jnp.int32)
    positions = last + 1
    logits = [
        np.asarray(llama.decode_step(params, tokens, positions, k.copy(), v.copy(), config, w)[0])
        for w in (128, 256, 384)
    ]
    assert all(np.array_equal(logits[0], other) for other in logits[1:])


def test_the_model_answers_in_its_own_chat_format(smollm2: LlamaModel) -> None:
    tokenizer = smollm2.tokenizer
    prompt = tokenizer.render([{"role": "user", "content": "What is the capital of France?"}])
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tokenizer.encode(prompt)
    assert ids[0] == tokenizer.bos_id  # <|im_start|> is matched whole, as a control token
    out, logits = smollm2.generate_greedy(ids, 16)
    assert "Paris" in tokenizer.decode(out)
    assert len(logits) == len(out) + 1 and logits[0].shape == (smollm2.config.vocab_size,)
    assert smollm2.config.num_kv_heads == 3 and smollm2.config.num_layers == 30

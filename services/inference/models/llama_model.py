"""A loaded Llama-architecture model: params, config, its own tokenizer, its version, and
greedy generation over a preallocated KV cache (the serving engine batches the same
`llama.forward` and `llama.decode_step`). Built from a GGUF header's metadata and its
tensors, whether they were read from a file or from tensor atoms."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from hartonomous import gguf
from services.inference.models import llama
from services.inference.models.chat_tokenizer import ChatTokenizer, from_gguf
from services.inference.models.ggml import dequantize
from services.inference.models.llama import LlamaConfig, Params


@dataclass(frozen=True, eq=False)
class LlamaModel:
    params: Params
    config: LlamaConfig
    tokenizer: ChatTokenizer
    version: str

    def generate_greedy(
        self, prompt: Sequence[int], max_tokens: int, cache_len: int = 512
    ) -> tuple[list[int], list[np.ndarray]]:
        """The argmax continuation of one prompt, and the logits before each chosen token
        (the prompt's last position first). Stops at EOS or after max_tokens."""
        if len(prompt) + max_tokens > cache_len:
            raise ValueError(f"{len(prompt)} + {max_tokens} tokens exceed the cache of {cache_len}")
        k, v = llama.empty_cache(self.config, 1, cache_len)
        tokens = jnp.asarray([list(prompt)], jnp.int32)
        start = jnp.zeros((1,), jnp.int32)
        last = jnp.asarray([len(prompt) - 1], jnp.int32)
        logits, k, v = llama.forward(self.params, tokens, start, last, k, v, self.config)
        out: list[int] = []
        rows: list[np.ndarray] = []
        while True:
            row = np.asarray(logits[0])
            rows.append(row)
            token = int(row.argmax())
            if token == self.tokenizer.eos_id or len(out) == max_tokens:
                break
            out.append(token)
            step = jnp.asarray([token], jnp.int32)
            position = jnp.asarray([len(prompt) + len(out) - 1], jnp.int32)
            logits, k, v = llama.decode_step(
                self.params, step, position, k, v, self.config, cache_len
            )
        return out, rows[: len(out) + 1]


def build_llama(
    metadata: Mapping[str, Any],
    tensors: Mapping[str, tuple[str, tuple[int, ...], bytes]],
    version: str,
) -> LlamaModel:
    """metadata: the GGUF key-values with arrays whole; tensors: name -> (encoding, GGUF
    shape, bytes)."""
    config = LlamaConfig.from_gguf(dict(metadata))
    arrays = {name: dequantize(*t) for name, t in tensors.items()}
    return LlamaModel(llama.params_from(arrays, config), config, from_gguf(metadata), version)


def load_gguf(path: Path) -> LlamaModel:
    """A GGUF file read directly (tests and tools; the platform loads from tensor atoms). Its
    version is the file's SHA-256."""
    data = path.read_bytes()
    header = gguf.read_header(io.BytesIO(data).read, len(data))
    tensors = {}
    for info in header.tensors:
        encoding, nbytes = gguf.ggml_nbytes(info.name, info.type_id, info.shape)
        at = header.data_start + info.offset
        tensors[info.name] = (encoding, info.shape, data[at : at + nbytes])
    return build_llama(header.metadata, tensors, hashlib.sha256(data).hexdigest())

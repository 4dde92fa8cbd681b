"""A GGUF model's own tokenizer and chat template (GPT-2-style byte-level BPE, as
SmolLM2 ships it): the vocabulary and merges of `tokenizer.ggml.*` built into a `tokenizers`
BPE, the control tokens (<|im_start|>, <|im_end|>, ...) matched whole in text, and
`tokenizer.chat_template` rendered with jinja2.

Pre-tokenization follows llama.cpp's for SmolLM (`tokenizer.ggml.pre` = "smollm"): every
digit is a piece of its own, then GPT-2's split (contractions, letters, numbers, other
symbols, white space)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2.sandbox
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers

CONTROL = 3  # tokenizer.ggml.token_type of a control token
GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
PRE_TOKENIZERS = {"smollm", "gpt2", "default"}


@dataclass(frozen=True)
class ChatTokenizer:
    tokenizer: Tokenizer
    template: jinja2.Template | None
    bos_id: int
    eos_id: int
    add_bos: bool

    def encode(self, text: str) -> list[int]:
        """Token ids of text; control tokens written in the text are matched whole."""
        ids: list[int] = self.tokenizer.encode(text, add_special_tokens=False).ids
        return [self.bos_id, *ids] if self.add_bos else ids

    def decode(self, ids: Sequence[int]) -> str:
        return str(self.tokenizer.decode(list(ids), skip_special_tokens=False))

    def render(self, messages: Sequence[Mapping[str, str]]) -> str:
        """The chat as the model was trained to read it, ending where the assistant speaks."""
        if self.template is None:
            raise ValueError("the model has no chat template")
        return str(self.template.render(messages=list(messages), add_generation_prompt=True))


def from_gguf(metadata: Mapping[str, Any]) -> ChatTokenizer:
    kind, pre = metadata["tokenizer.ggml.model"], metadata.get("tokenizer.ggml.pre", "default")
    if kind != "gpt2" or pre not in PRE_TOKENIZERS:
        raise ValueError(f"unsupported tokenizer {kind!r} with pre-tokenizer {pre!r}")
    tokens: list[str] = metadata["tokenizer.ggml.tokens"]
    merges = [tuple(m.split(" ", 1)) for m in metadata["tokenizer.ggml.merges"]]
    vocab = {token: i for i, token in enumerate(tokens)}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=merges, fuse_unk=False))
    split = pre_tokenizers.Split(Regex(GPT2_SPLIT), behavior="isolated")
    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    steps = [split, byte_level]
    if pre == "smollm":
        steps.insert(0, pre_tokenizers.Split(Regex(r"\p{N}"), behavior="isolated"))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(steps)
    tokenizer.decoder = decoders.ByteLevel()
    types: list[int] = metadata["tokenizer.ggml.token_type"]
    control = [t for t, kind in zip(tokens, types, strict=True) if kind == CONTROL]
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in control])
    source = metadata.get("tokenizer.chat_template")
    template = None
    if source:
        env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        template = env.from_string(source)
    return ChatTokenizer(
        tokenizer=tokenizer,
        template=template,
        bos_id=int(metadata["tokenizer.ggml.bos_token_id"]),
        eos_id=int(metadata["tokenizer.ggml.eos_token_id"]),
        add_bos=bool(metadata.get("tokenizer.ggml.add_bos_token", False)),
    )

"""WordPiece tokenization exactly as sentence-transformers feeds all-MiniLM-L6-v2."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from tokenizers import Tokenizer


def load_tokenizer(tokenizer_json: str, max_seq_length: int) -> Tokenizer:
    """tokenizer.json (its text) with truncation to max_seq_length tokens, [CLS] and [SEP] included.

    The file itself ships with truncation and fixed padding at 128; sentence-transformers
    overrides both per call (truncate to its max_seq_length, pad later), and so do we.
    """
    tokenizer = Tokenizer.from_str(tokenizer_json)
    tokenizer.enable_truncation(max_length=max_seq_length)
    tokenizer.no_padding()
    return tokenizer


def tokenize(tokenizer: Tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Token ids per text. Raises TypeError for anything that is not a str."""
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"texts must be str, got {type(text).__name__}")
    # sentence-transformers strips each text before tokenizing.
    return [enc.ids for enc in tokenizer.encode_batch([text.strip() for text in texts])]


def pad_batch(
    token_ids: Sequence[Sequence[int]], seq_len: int, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """Right-pad to a static [batch_size, seq_len] shape: (input_ids, attention_mask) int32.

    Filler rows beyond len(token_ids) hold a single [PAD] token rather than nothing, so no
    row has an all-zero mask (cuDNN's length-based masking does not define that case).
    """
    if len(token_ids) > batch_size:
        raise ValueError(f"{len(token_ids)} sequences do not fit a batch of {batch_size}")
    input_ids = np.zeros((batch_size, seq_len), dtype=np.int32)
    attention_mask = np.zeros((batch_size, seq_len), dtype=np.int32)
    attention_mask[len(token_ids) :, 0] = 1
    for row, ids in enumerate(token_ids):
        if len(ids) > seq_len:
            raise ValueError(f"a sequence of {len(ids)} tokens does not fit length {seq_len}")
        input_ids[row, : len(ids)] = ids
        attention_mask[row, : len(ids)] = 1
    return input_ids, attention_mask

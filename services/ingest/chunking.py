"""Token-aware chunking with the MiniLM WordPiece tokenizer, the one that later embeds the
chunks, so every chunk fits the model's window.

Memory stays small on large texts: one tokenizer call over a megabyte costs ~200 MB, so the
text is tokenized in segments cut at whitespace (BERT's pre-tokenizer splits words there, so
the tokens are the same as in one call) and only token offsets are kept, in compact arrays.
"""

from __future__ import annotations

import hashlib
from array import array
from collections.abc import Iterator
from pathlib import Path

from tokenizers import Tokenizer

from hartonomous.modelfiles import minilm_model_dir
from services.ingest.domain.chunks import Chunk, ChunkPolicy, chunk_spans, token_windows

SEGMENT_CHARS = 8192
_WHITESPACE = (" ", "\n", "\t", "\r")


class TextChunker:
    def __init__(self, tokenizer_path: Path, policy: ChunkPolicy) -> None:
        tokenizer = Tokenizer.from_file(str(tokenizer_path))
        # The file ships truncating and padding to 128 tokens; chunking needs every token.
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self._tokenizer = tokenizer
        self.policy = policy

    @classmethod
    def minilm(cls, policy: ChunkPolicy) -> TextChunker:
        return cls(minilm_model_dir() / "tokenizer.json", policy)

    def chunk(self, text: str) -> list[Chunk]:
        """Chunks of `text` in order; chunk atom id = SHA-256 of the chunk's UTF-8 bytes."""
        starts, ends, word_starts = self.token_spans(text)
        windows = token_windows(word_starts, self.policy.tokens, self.policy.overlap)
        return [
            Chunk(index, hashlib.sha256(text[s.start_char : s.end_char].encode()).hexdigest(), s)
            for index, s in enumerate(chunk_spans(text, starts, ends, windows))
        ]

    def token_spans(self, text: str) -> tuple[array[int], array[int], bytearray]:
        """Each word piece's character span, and whether it begins a word."""
        starts, ends, word_starts = array("q"), array("q"), bytearray()
        for first, last in whitespace_segments(text, SEGMENT_CHARS):
            encoding = self._tokenizer.encode(text[first:last], add_special_tokens=False)
            previous = None
            for (start, end), word in zip(encoding.offsets, encoding.word_ids, strict=True):
                starts.append(first + start)
                ends.append(first + end)
                word_starts.append(word != previous)
                previous = word
        return starts, ends, word_starts


def whitespace_segments(text: str, size: int) -> Iterator[tuple[int, int]]:
    """[start, end) ranges of about `size` characters covering `text`, each cut before a
    whitespace character; only a run of `size` characters without whitespace is cut inside."""
    start = 0
    while start < len(text):
        end = min(start + size, len(text))
        if end < len(text):
            cut = max(text.rfind(space, start + 1, end + 1) for space in _WHITESPACE)
            end = cut if cut > start else end
        yield start, end
        start = end

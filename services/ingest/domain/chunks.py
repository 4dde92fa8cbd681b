"""Where text is cut into chunks: token windows at word boundaries, and their character and
byte spans.

Large texts: only the first `ChunkPolicy.max_bytes` (1 MiB by default) of a text atom are
chunked. The whole atom is stored and addressed; its chunks cover that prefix, and the chunker
string on AtomChunked says so (`max_bytes=`). This bounds the memory, the AtomChunked event
(a few thousand chunks, some hundred KB: within Kafka's default 1 MB record limit) and the
embedding work per atom.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MAX_CHUNK_TOKENS = 254
"""The model reads 256 word pieces, [CLS] and [SEP] included."""


@dataclass(frozen=True)
class ChunkPolicy:
    """Chunks of at most `tokens` word pieces, consecutive chunks sharing about `overlap`."""

    tokens: int = 200
    overlap: int = 32
    max_bytes: int = 1 << 20

    def __post_init__(self) -> None:
        if not 0 < self.tokens <= MAX_CHUNK_TOKENS:
            raise ValueError(f"chunk tokens must be in [1, {MAX_CHUNK_TOKENS}]: {self.tokens}")
        if not 0 <= self.overlap < self.tokens:
            raise ValueError(f"overlap must be in [0, {self.tokens}): {self.overlap}")
        if self.max_bytes < 1:
            raise ValueError(f"max_bytes must be positive: {self.max_bytes}")

    @property
    def chunker(self) -> str:
        """The AtomChunked `chunker`: a different policy yields a different chunk set."""
        return (
            f"minilm-wordpiece/v1 tokens={self.tokens} overlap={self.overlap}"
            f" max_bytes={self.max_bytes}"
        )


@dataclass(frozen=True)
class Span:
    start_char: int
    end_char: int
    start_byte: int
    end_byte: int


@dataclass(frozen=True)
class Chunk:
    index: int
    atom_id: str
    span: Span


def token_windows(word_starts: Sequence[int], size: int, overlap: int) -> list[tuple[int, int]]:
    """Token index windows [start, end) of at most `size` tokens that begin and end at word
    boundaries (`word_starts[i]` is true when token i begins a word), each starting at the
    first word at most `overlap` tokens before the previous window's end. A window is cut
    inside a word only when no word boundary fits (a word longer than the window allows;
    WordPiece turns a word over 100 characters into one [UNK], so with the default 200 tokens
    and 32 overlap that never happens). No tokens: one empty window."""
    n = len(word_starts)
    windows: list[tuple[int, int]] = []
    start = end = 0
    while True:
        # Back off to a word start, but never to or before the previous end: each window
        # must reach further than the last.
        floor, end = max(start, end), min(start + size, n)
        if end < n:
            cut = end
            while cut > floor and not word_starts[cut]:
                cut -= 1
            end = cut if cut > floor else end
        windows.append((start, end))
        if end == n:
            return windows
        start = max(end - overlap, start + 1)
        while start < end and not word_starts[start]:
            start += 1


def chunk_spans(
    text: str,
    token_starts: Sequence[int],
    token_ends: Sequence[int],
    windows: Sequence[tuple[int, int]],
) -> list[Span]:
    """Character and UTF-8 byte spans of the windows. The first span starts at 0 and the last
    ends at len(text), so together they cover the text (a one-window text is one span equal to
    the whole text, whose chunk is then the text's own atom)."""
    last = len(windows) - 1
    chars = [
        (
            0 if k == 0 else token_starts[start],
            len(text) if k == last else token_ends[end - 1],
        )
        for k, (start, end) in enumerate(windows)
    ]
    to_byte = _byte_offsets(text, {pos for span in chars for pos in span})
    return [Span(s, e, to_byte[s], to_byte[e]) for s, e in chars]


def _byte_offsets(text: str, positions: set[int]) -> dict[int, int]:
    """UTF-8 byte offset of each character position, in one pass over the text."""
    offsets: dict[int, int] = {}
    char = byte = 0
    for pos in sorted(positions):
        byte += len(text[char:pos].encode())
        char = pos
        offsets[pos] = byte
    return offsets

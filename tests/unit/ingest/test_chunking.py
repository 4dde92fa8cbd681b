"""Chunking with the real MiniLM tokenizer: every chunk fits the model and is exactly the
parent's bytes at its offsets, addressed by their hash."""

from __future__ import annotations

import hashlib
import itertools
import random

import pytest
from tokenizers import Tokenizer

from hartonomous.modelfiles import minilm_model_dir
from services.ingest.chunking import TextChunker, whitespace_segments
from services.ingest.domain.chunks import MAX_CHUNK_TOKENS, ChunkPolicy

PIECES = [
    "The", "ledger", "is", "the", "source", "of", "truth.", "événement", "naïve", "東京",
    "überprüfung,", "(projections)", "replay;", "audit!", "supercalifragilisticexpialidocious",
    "x" * 150, "🙂", "\n\n", "\t", "e\u0301", "it's", "well-known", "3.14159",
]  # fmt: skip


def corpus(words: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    return "  " + " ".join(rng.choice(PIECES) for _ in range(words)) + " \n"


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    tok = Tokenizer.from_file(str(minilm_model_dir() / "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    return tok


@pytest.fixture(scope="module")
def chunker() -> TextChunker:
    return TextChunker.minilm(ChunkPolicy())


def test_chunks_fit_the_model_and_reproduce_the_parent(
    chunker: TextChunker, tokenizer: Tokenizer
) -> None:
    text = corpus(6000)
    data = text.encode()
    chunks = chunker.chunk(text)
    assert len(chunks) > 10 and [c.index for c in chunks] == list(range(len(chunks)))
    assert (chunks[0].span.start_char, chunks[-1].span.end_char) == (0, len(text))
    assert chunks[-1].span.end_byte == len(data)
    for chunk in chunks:
        span = chunk.span
        piece = data[span.start_byte : span.end_byte]
        assert piece == text[span.start_char : span.end_char].encode()
        assert chunk.atom_id == hashlib.sha256(piece).hexdigest()
        pieces = len(tokenizer.encode(piece.decode(), add_special_tokens=False).ids)
        assert pieces <= ChunkPolicy().tokens <= MAX_CHUNK_TOKENS
    for a, b in itertools.pairwise(chunks):
        assert a.span.start_char < b.span.start_char < a.span.end_char  # they overlap


def test_a_short_text_is_one_chunk_equal_to_itself(chunker: TextChunker) -> None:
    for text in ("A short note.", "  \n", "東京"):
        [chunk] = chunker.chunk(text)
        assert chunk.atom_id == hashlib.sha256(text.encode()).hexdigest()
        assert (chunk.span.start_byte, chunk.span.end_byte) == (0, len(text.encode()))


def test_segmenting_does_not_change_the_tokens(chunker: TextChunker, tokenizer: Tokenizer) -> None:
    text = corpus(8000, seed=3)
    starts, ends, _ = chunker.token_spans(text)
    whole = tokenizer.encode(text, add_special_tokens=False).offsets
    assert list(zip(starts, ends, strict=True)) == whole


def test_segments_cover_the_text_and_cut_before_whitespace() -> None:
    text = corpus(3000, seed=5) + "y" * 300
    segments = list(whitespace_segments(text, 256))
    assert segments[0][0] == 0 and segments[-1][1] == len(text)
    for (_, end), (start, _) in itertools.pairwise(segments):
        assert end == start
    for start, end in segments:
        assert 0 < end - start <= 256
        assert end == len(text) or text[end].isspace() or end - start == 256

"""A small real corpus: the long descriptions of installed packages (text nobody here wrote),
chunked the way ingest chunks text: paragraphs packed into chunks of at most MAX_CHARS."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from email import message_from_string
from importlib.metadata import distribution

from hartonomous.events.payloads import TextChunk

PACKAGES = (
    "fastavro",
    "asyncpg",
    "grpcio",
    "jax",
    "qdrant-client",
    "h11",
    "portalocker",
    "idna",
    "cloudpickle",
    "httpx",
    "numpy",
)
MAX_CHARS = 800
_PARAGRAPH_END = re.compile(r"\n\s*\n")


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Span:
    """A chunk as AtomChunked names it, and its text."""

    chunk: TextChunk
    text: str

    @property
    def atom_id(self) -> str:
        return self.chunk.atom_id

    @property
    def index(self) -> int:
        return self.chunk.index


@dataclass(frozen=True)
class Doc:
    name: str
    text: str
    spans: tuple[Span, ...]

    @property
    def data(self) -> bytes:
        return self.text.encode()

    @property
    def atom_id(self) -> str:
        return sha(self.data)

    def span_with(self, passage: str) -> Span:
        """The chunk that holds `passage` (whitespace-insensitive)."""
        wanted = " ".join(passage.split())
        for span in self.spans:
            if wanted in " ".join(span.text.split()):
                return span
        raise LookupError(f"no chunk of {self.name} holds {passage!r}: did its text change?")


def chunk_bounds(text: str, max_chars: int = MAX_CHARS) -> list[tuple[int, int]]:
    """Character spans: whole paragraphs packed up to max_chars; a longer paragraph is cut
    at the last line break (or space) before the limit."""
    cuts = [m.end() for m in _PARAGRAPH_END.finditer(text)] + [len(text)]
    spans: list[tuple[int, int]] = []
    start = end = 0
    for cut in cuts:
        while cut - start > max_chars:
            if end > start:
                spans.append((start, end))
                start = end
                continue
            window = text[start : start + max_chars]
            split = max(window.rfind("\n"), window.rfind(" "))
            end = start + (split + 1 if split > 0 else max_chars)
            spans.append((start, end))
            start = end
        end = cut
    if end > start:
        spans.append((start, end))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def document(name: str, text: str) -> Doc:
    return Doc(
        name,
        text,
        tuple(span(text, start, end, i) for i, (start, end) in enumerate(chunk_bounds(text))),
    )


def span(text: str, start: int, end: int, index: int = 0) -> Span:
    """The chunk of `text` between two character positions."""
    start_byte = len(text[:start].encode())
    data = text[start:end].encode()
    chunk = TextChunk(
        index=index,
        atom_id=sha(data),
        start_char=start,
        end_char=end,
        start_byte=start_byte,
        end_byte=start_byte + len(data),
    )
    return Span(chunk, text[start:end])


def description(package: str) -> str:
    """A package's long description: the body of its METADATA file."""
    return str(message_from_string(distribution(package).read_text("METADATA") or "").get_payload())


def package_docs(names: tuple[str, ...] = PACKAGES) -> list[Doc]:
    return [document(name, description(name)) for name in names]

"""The search service's rules, free of I/O: BM25 sparse vectors, which chunks a parent yields,
the identity and payload of a point, what a valid query is, and the filter every query runs
under (the caller's tenant, always)."""

from __future__ import annotations

import enum
import hashlib
import json
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hartonomous.chunks import chunk_text
from hartonomous.events.payloads import TextChunk
from hartonomous.tenants import parse_tenant_id

DIM = 384
"""all-MiniLM-L6-v2's width: the collection's dense vectors are this long."""

SNIPPET_CHARS = 300
DEFAULT_K = 10
MAX_K = 100
MAX_QUERY_BYTES = 4096
MAX_FILTER_KEYS = 16
MAX_FILTER_VALUE_CHARS = 256
MODALITIES = frozenset({"text", "image", "audio", "video", "model", "tensor", "binary"})
METADATA_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""Metadata keys that are filterable: plain names, because a key becomes part of a payload
path (`meta.<key>`) and '.', '[' or ']' would change which field the path names."""


class BadEvent(ValueError):
    """An event that can never be projected (it goes to the dead-letter topic)."""


class InvalidQuery(ValueError):
    """A search request the caller has to fix."""


# ---------------------------------------------------------------------------------------
# BM25
#
# Tokens are the runs of letters and digits of the case-folded text (punctuation and '_'
# split words: "grpc.aio" is "grpc" + "aio"), minus Lucene's classic English stop set.
# A token's term index is the first 4 bytes of its BLAKE2b digest, stable across processes
# and machines (Python's hash() is salted per process). A document is its term counts; each
# engine weighs them its own way (the embedded one hands them to its BM25 library, Qdrant
# takes the saturated term frequency of `bm25_weights` and multiplies in the IDF itself).
# Either way a document's length is normalised by its tenant's average length (`Lengths`),
# and measured as Lucene and tantivy store it (`bm25_length`). Queries carry 1 per distinct term.

K1 = 1.2
B = 0.75
AVG_LEN = 90.0
"""The average chunk length in tokens assumed of a tenant with no points yet (what
~1000-character chunks of prose average)."""

# Lucene's classic English stop set, as one string so it reads as a sentence would.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their"  # noqa: SIM905
    " then there these they this to was will with".split()
)
_WORD = re.compile(r"[^\W_]+")


@dataclass(frozen=True)
class SparseVector:
    indices: tuple[int, ...]
    values: tuple[float, ...]


def tokenize(text: str) -> list[str]:
    return [word for word in _WORD.findall(text.casefold()) if word not in STOPWORDS]


def term_index(token: str) -> int:
    return int.from_bytes(hashlib.blake2b(token.encode(), digest_size=4).digest(), "little")


def term_counts(text: str) -> SparseVector:
    """How often each term occurs in the text (colliding tokens share a term)."""
    counts = Counter(term_index(token) for token in tokenize(text))
    indices = tuple(sorted(counts))
    return SparseVector(indices, tuple(float(counts[i]) for i in indices))


def bm25_length(terms: float) -> int:
    """A document's length as BM25 normalises it: Lucene's one-byte norm, which tantivy stores
    too. Exact up to 40 terms; longer ones keep 4 significant bits of their excess over 24
    (rounded down: 41 -> 40, 100 -> 96; at most 11% less). Only the documents' lengths are
    rounded, not the average."""
    excess = int(terms) - 24
    if excess < 16:
        return int(terms)
    drop = excess.bit_length() - 4
    return 24 + (excess >> drop << drop)


def bm25_weights(counts: SparseVector, avg_len: float) -> SparseVector:
    """BM25 document weights of term counts: tf*(k1+1) / (tf + k1*(1-b+b*len/avg_len)), with
    len as `bm25_length` measures it."""
    norm = K1 * (1 - B + B * bm25_length(sum(counts.values)) / avg_len)
    return SparseVector(counts.indices, tuple(c * (K1 + 1) / (c + norm) for c in counts.values))


@dataclass(frozen=True)
class Lengths:
    """BM25's length statistics of a set of documents: how many, and how many terms in all."""

    points: int = 0
    terms: float = 0.0

    @classmethod
    def of(cls, documents: Iterable[SparseVector]) -> Lengths:
        counts = [sum(document.values) for document in documents]
        return cls(len(counts), sum(counts))

    def __add__(self, other: Lengths) -> Lengths:
        return Lengths(self.points + other.points, self.terms + other.terms)

    def __sub__(self, other: Lengths) -> Lengths:
        return Lengths(self.points - other.points, self.terms - other.terms)

    @property
    def average(self) -> float:
        """The mean document length (AVG_LEN of no documents)."""
        return self.terms / self.points if self.points else AVG_LEN

    def strays_from(self, avg_len: float, tolerance: float) -> bool:
        """Whether weights computed with `avg_len` are more than `tolerance` (a fraction of it)
        off these documents' own average."""
        return abs(self.average - avg_len) > tolerance * avg_len


def query_terms(text: str) -> SparseVector:
    indices = tuple(sorted({term_index(token) for token in tokenize(text)}))
    return SparseVector(indices, (1.0,) * len(indices))


# ---------------------------------------------------------------------------------------
# Chunks


@dataclass(frozen=True)
class Chunk:
    """What the index keeps of a chunk's text: its term counts and the snippet shown in results."""

    atom_id: str
    index: int
    snippet: str
    terms: SparseVector


def snippet(text: str) -> str:
    return " ".join(text.split())[:SNIPPET_CHARS]


def chunks_of(parent_id: str, parent: bytes, chunks: Sequence[TextChunk]) -> list[Chunk]:
    """The distinct chunks of an AtomChunked event, in document order (a chunk that repeats an
    earlier one is the same atom at its first position). Raises ChunkMismatch for a chunk that
    does not fit its parent."""
    found: dict[str, Chunk] = {}
    for chunk in sorted(chunks, key=lambda c: c.index):
        if chunk.atom_id not in found:
            text = chunk_text(parent_id, parent, chunk)
            found[chunk.atom_id] = Chunk(
                chunk.atom_id, chunk.index, snippet(text), term_counts(text)
            )
    return list(found.values())


# ---------------------------------------------------------------------------------------
# Metadata


Meta = dict[str, str | list[str]]


def _spell(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def filterable_metadata(metadata_json: str) -> Meta:
    """The metadata a filter can match: values under plain keys, spelled as strings (numbers and
    booleans in JSON: 2024 -> "2024", true -> "true"); a list of scalars matches any member.
    Nested objects and other keys stay out of the index."""
    try:
        metadata = json.loads(metadata_json)
    except json.JSONDecodeError as exc:
        raise BadEvent(f"metadata_json is not JSON: {exc}") from None
    if not isinstance(metadata, dict):
        raise BadEvent(f"metadata_json must be a JSON object, got {type(metadata).__name__}")
    meta: Meta = {}
    for key, value in sorted(metadata.items()):
        if not METADATA_KEY.fullmatch(key):
            continue
        if isinstance(value, list) and all(_scalar(v) for v in value):
            meta[key] = [_spell(v) for v in value]
        elif _scalar(value):
            meta[key] = _spell(value)
    return meta


def _scalar(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)


# ---------------------------------------------------------------------------------------
# Points

_POINT_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "hartonomous:search:point")


def point_id(tenant_id: str, document_id: str, chunk_id: str, model_version: str) -> str:
    """One point per tenant, document, chunk and model: the same facts always land on the same
    point, so every write is a keyed upsert and a replay rewrites instead of duplicating. The
    document is part of it because the same chunk (a shared paragraph) may sit in two."""
    name = "\0".join((tenant_id, document_id, chunk_id, model_version))
    return str(uuid.uuid5(_POINT_NAMESPACE, name))


@dataclass(frozen=True)
class Point:
    id: str
    dense: Sequence[float]
    sparse: SparseVector
    payload: Mapping[str, Any]


@dataclass(frozen=True)
class IndexedChunk:
    """A chunk with everything its point needs: the join of a tenant's reference to a document,
    the document, one of its chunks and that chunk's vector."""

    tenant_id: str
    document_id: str
    modality: str
    mime_type: str
    meta: Meta
    referenced_at: datetime
    chunk: Chunk
    model_version: str
    vector: Sequence[float]

    @property
    def point_id(self) -> str:
        return point_id(self.tenant_id, self.document_id, self.chunk.atom_id, self.model_version)

    def point(self) -> Point:
        return Point(
            self.point_id,
            self.vector,
            self.chunk.terms,
            {
                "tenant_id": self.tenant_id,
                "document_id": self.document_id,
                "atom_id": self.chunk.atom_id,
                "chunk_index": self.chunk.index,
                "model_version": self.model_version,
                "modality": self.modality,
                "mime_type": self.mime_type,
                "snippet": self.chunk.snippet,
                "meta": self.meta,
            },
        )


# ---------------------------------------------------------------------------------------
# Queries


class Mode(enum.Enum):
    DENSE = "dense"
    SPARSE = "sparse"
    HYBRID = "hybrid"


@dataclass(frozen=True)
class Filter:
    """What every result must match: the tenant, then each `(key, value)` equality (AND).

    There is no OR and no NOT, and the tenant is a field of its own rather than one condition
    among others: a filter can only narrow the tenant's points, never reach past them."""

    tenant_id: str
    must: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SearchQuery:
    tenant_id: str
    text: str
    k: int
    mode: Mode
    modality: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def filter(self, model_version: str | None = None) -> Filter:
        """The tenant's points matching the user's filter (and of one model's vectors, which
        compare only with that model's query vector)."""
        must = [("meta." + key, value) for key, value in sorted(self.metadata.items())]
        if self.modality:
            must.insert(0, ("modality", self.modality))
        if model_version is not None:
            must.append(("model_version", model_version))
        return Filter(self.tenant_id, tuple(must))


@dataclass(frozen=True)
class EmbedUsage:
    """The tokens inference spent embedding a query: billed with the search's receipt, in the
    same write (inference was asked to leave that usage to search)."""

    tokens: int
    model_version: str
    device: str


@dataclass(frozen=True)
class QueryVector:
    """A query's dense vector and the version of the model that made it."""

    vector: Sequence[float]
    model_version: str
    usage: EmbedUsage | None = None
    """What embedding it cost; None when it came from the query cache (nothing to bill)."""


@dataclass(frozen=True)
class Found:
    """A query's hits, and what embedding the query cost when it was embedded for it."""

    hits: list[Hit]
    embed_usage: EmbedUsage | None = None


def parse_query(
    tenant_id: str,
    text: str,
    k: int,
    mode: Mode,
    modality: str = "",
    metadata: Mapping[str, str] | None = None,
) -> SearchQuery:
    """A valid SearchQuery, or InvalidQuery naming the first problem."""
    metadata = dict(metadata or {})
    tenant = parse_tenant_id(tenant_id)
    if not text.strip():
        raise InvalidQuery("query is empty")
    if len(text.encode()) > MAX_QUERY_BYTES:
        raise InvalidQuery(f"query is longer than {MAX_QUERY_BYTES} bytes of UTF-8")
    if not 0 <= k <= MAX_K:
        raise InvalidQuery(f"k must be in [0, {MAX_K}] (0 means {DEFAULT_K}), got {k}")
    if modality and modality not in MODALITIES:
        raise InvalidQuery(f"unknown modality {modality!r}; one of {sorted(MODALITIES)}")
    if len(metadata) > MAX_FILTER_KEYS:
        raise InvalidQuery(f"at most {MAX_FILTER_KEYS} metadata conditions, got {len(metadata)}")
    for key, value in metadata.items():
        if not METADATA_KEY.fullmatch(key):
            raise InvalidQuery(f"metadata key {key!r} is not 1-64 letters, digits, '_' or '-'")
        if len(value) > MAX_FILTER_VALUE_CHARS:
            raise InvalidQuery(f"metadata value of {key!r} exceeds {MAX_FILTER_VALUE_CHARS} chars")
    return SearchQuery(tenant, text, k or DEFAULT_K, mode, modality, metadata)


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    payload: Mapping[str, Any]


FUSION_CANDIDATES = 50
"""Hybrid queries fuse each mode's best this many (or k, if more) by reciprocal rank."""


def distinct_chunks(hits: Iterable[Hit], limit: int) -> list[Hit]:
    """The best hit per (document, chunk): points of several model versions hold the same chunk."""
    seen: set[tuple[str, str]] = set()
    best: list[Hit] = []
    for hit in hits:
        key = (hit.payload["document_id"], hit.payload["atom_id"])
        if key not in seen:
            seen.add(key)
            best.append(hit)
    return best[:limit]


# ---------------------------------------------------------------------------------------
# What engines share


def filter_term(key: str, value: str) -> str:
    """One equality a Filter can hold, spelled as a single exact-match term."""
    return f"{key}={value}"


def filter_terms(payload: Mapping[str, Any]) -> list[str]:
    """Every term a Filter condition on this payload can match: its top-level string fields
    but the snippet, and each metadata value (a list's every member) as `meta.<key>`."""
    terms = [
        filter_term(key, value)
        for key, value in payload.items()
        if isinstance(value, str) and key != "snippet"
    ]
    for key, value in (payload.get("meta") or {}).items():
        for member in value if isinstance(value, list) else [value]:
            terms.append(filter_term(f"meta.{key}", member))
    return terms


RRF_OFFSET = 2
"""A candidate at 0-based position p of a ranking adds 1/(p + RRF_OFFSET) to its fused score:
the constant Qdrant's fusion uses, so both engines rank a hybrid query alike."""


def fuse_by_reciprocal_rank(rankings: Sequence[Sequence[Hit]], limit: int) -> list[Hit]:
    """The best `limit` of several rankings of the same points, by reciprocal rank fusion."""
    scores: dict[str, float] = {}
    first: dict[str, Hit] = {}
    for ranking in rankings:
        for position, hit in enumerate(ranking):
            scores[hit.id] = scores.get(hit.id, 0.0) + 1.0 / (position + RRF_OFFSET)
            first.setdefault(hit.id, hit)
    best = sorted(scores, key=lambda point: (-scores[point], point))[:limit]
    return [Hit(point, scores[point], first[point].payload) for point in best]

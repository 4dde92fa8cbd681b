"""The search service's pure rules: BM25 vectors, chunk extraction, metadata, point identity,
query validation and the tenant-first filter."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest

from hartonomous.chunks import ChunkMismatch
from hartonomous.events.payloads import TextChunk
from hartonomous.tenants import InvalidTenantId
from services.search import domain
from services.search.domain import (
    K1,
    B,
    BadEvent,
    Chunk,
    Filter,
    Hit,
    IndexedChunk,
    InvalidQuery,
    Mode,
    SparseVector,
)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------
# BM25


def test_tokens_are_casefolded_words_without_punctuation_or_stopwords() -> None:
    text = "The grpc.aio API is FAST_and_small; Königsgäßchen isn't 2 the point!"
    assert domain.tokenize(text) == [
        "grpc", "aio", "api", "fast", "small", "königsgässchen", "isn", "t", "2", "point",
    ]  # fmt: skip


def test_term_indices_are_stable_32_bit_hashes() -> None:
    # Pinned: an index that changed between releases would orphan every stored vector.
    assert domain.term_index("avro") == 0xB4AF84BD
    assert all(0 <= domain.term_index(w) < 2**32 for w in ("a", "ü", "x" * 100))


def test_a_document_is_its_term_counts() -> None:
    counts = domain.term_counts("Avro, avro and the schema")
    expected = {domain.term_index("avro"): 2.0, domain.term_index("schema"): 1.0}
    assert list(counts.indices) == sorted(expected)
    assert dict(zip(counts.indices, counts.values, strict=True)) == expected


def test_bm25_weights_are_saturated_term_frequencies() -> None:
    terms = domain.bm25_weights(domain.term_counts("avro avro schema"), avg_len=12.0)
    norm = K1 * (1 - B + B * 3 / 12.0)
    weight = {1: (K1 + 1) / (1 + norm), 2: 2 * (K1 + 1) / (2 + norm)}
    expected = {domain.term_index("avro"): weight[2], domain.term_index("schema"): weight[1]}
    assert list(terms.indices) == sorted(expected)
    assert dict(zip(terms.indices, terms.values, strict=True)) == pytest.approx(expected)
    assert weight[2] < 2 * weight[1]  # a repeated term counts for less each time


def test_bm25_lengths_are_lucenes_one_byte_norms() -> None:
    """The lengths tantivy's FIELD_NORMS_TABLE holds: every length rounds down to one of them."""
    assert [domain.bm25_length(n) for n in range(41)] == list(range(41))
    stored = {41: 40, 42: 42, 43: 42, 59: 56, 60: 60, 100: 96, 300: 280, 1000: 984}
    assert {n: domain.bm25_length(n) for n in stored} == stored
    assert domain.bm25_length(2_013_265_944) == 2_013_265_944  # the table's last entry


def test_lengths_add_and_remove_documents_and_say_when_an_average_strays() -> None:
    short, long = domain.term_counts("avro schema"), domain.term_counts("avro " * 6)
    both = domain.Lengths.of([short, long])
    assert both == domain.Lengths(2, 8.0) and both.average == 4.0
    assert both - domain.Lengths.of([long]) + domain.Lengths.of([short]) == domain.Lengths(2, 4.0)
    assert domain.Lengths().average == domain.AVG_LEN  # a tenant with no points yet
    assert not both.strays_from(4.1, tolerance=0.05)
    assert both.strays_from(4.3, tolerance=0.05)


def test_query_weights_are_one_per_distinct_term() -> None:
    terms = domain.query_terms("Avro, avro and the schema")
    assert sorted(terms.indices) == sorted({domain.term_index("avro"), domain.term_index("schema")})
    assert terms.values == (1.0, 1.0)
    assert domain.query_terms("the and of") == SparseVector((), ())


# ---------------------------------------------------------------------------------------
# Chunks

PARENT = "Ünïcödé first.\n\nSecond   paragraph\nwith words.".encode()


def spans(*pairs: tuple[int, int], ids: list[str] | None = None) -> list[TextChunk]:
    atom_ids = ids or [sha(PARENT[s:e]) for s, e in pairs]
    return [
        TextChunk(index=i, atom_id=a, start_char=0, end_char=0, start_byte=s, end_byte=e)
        for i, ((s, e), a) in enumerate(zip(pairs, atom_ids, strict=True))
    ]


def test_chunks_are_sliced_from_the_parent_once_each() -> None:
    cut = PARENT.index(b"Second")
    chunks = domain.chunks_of(sha(PARENT), PARENT, spans((0, cut), (cut, len(PARENT)), (0, cut)))
    assert [(c.atom_id, c.index) for c in chunks] == [
        (sha(PARENT[:cut]), 0),
        (sha(PARENT[cut:]), 1),
    ]
    assert chunks[1].snippet == "Second paragraph with words."
    assert chunks[1].terms == domain.term_counts(PARENT[cut:].decode())


def test_a_short_text_is_its_own_single_chunk() -> None:
    [chunk] = domain.chunks_of(sha(PARENT), PARENT, spans((0, len(PARENT))))
    assert chunk.atom_id == sha(PARENT)


@pytest.mark.parametrize(
    ("parent", "chunk_spans", "message"),
    [
        (PARENT, spans((0, len(PARENT) + 1), ids=["x"]), "outside the parent's"),
        (PARENT, spans((0, 5), ids=[sha(PARENT[:6])]), "bytes do not hash to"),
        (b"caf\xe9", [TextChunk(index=0, atom_id=sha(b"caf\xe9"), start_char=0, end_char=4,
                                start_byte=0, end_byte=4)], "is not UTF-8"),
    ],
)  # fmt: skip
def test_chunks_that_do_not_match_their_parent_are_bad_events(
    parent: bytes, chunk_spans: list[TextChunk], message: str
) -> None:
    with pytest.raises(ChunkMismatch, match=message):
        domain.chunks_of(sha(parent), parent, chunk_spans)


def test_snippets_collapse_whitespace_and_stop_at_300_characters() -> None:
    assert domain.snippet("  a\n\tb  ") == "a b"
    assert domain.snippet("word " * 100) == ("word " * 60)[:300]


# ---------------------------------------------------------------------------------------
# Metadata


def test_metadata_is_spelled_as_strings_under_plain_keys() -> None:
    raw = {
        "lang": "en",
        "year": 2024,
        "score": 0.5,
        "draft": True,
        "tags": ["a", 1, False],
        "nested": {"x": 1},
        "mixed": ["a", {"x": 1}],
        "a.b": "dotted",
        "tenant_id": "still just metadata",
    }
    assert domain.filterable_metadata(json.dumps(raw)) == {
        "lang": "en",
        "year": "2024",
        "score": "0.5",
        "draft": "true",
        "tags": ["a", "1", "false"],
        "tenant_id": "still just metadata",
    }


@pytest.mark.parametrize(("raw", "message"), [("[1]", "JSON object"), ("{", "not JSON")])
def test_metadata_that_is_not_a_json_object_is_a_bad_event(raw: str, message: str) -> None:
    with pytest.raises(BadEvent, match=message):
        domain.filterable_metadata(raw)


# ---------------------------------------------------------------------------------------
# Points


def test_point_ids_are_a_function_of_tenant_document_chunk_and_model() -> None:
    ids = {
        domain.point_id("acme", "doc", "chunk", "v1"),
        domain.point_id("other", "doc", "chunk", "v1"),
        domain.point_id("acme", "other", "chunk", "v1"),
        domain.point_id("acme", "doc", "other", "v1"),
        domain.point_id("acme", "doc", "chunk", "other"),
    }
    assert len(ids) == 5
    assert domain.point_id("acme", "doc", "chunk", "v1") in ids  # the same facts, the same id


def test_a_point_carries_what_filters_and_results_need() -> None:
    chunk = Chunk("c" * 64, 3, "snippet", SparseVector((7,), (1.5,)))
    indexed = IndexedChunk(
        "acme",
        "d" * 64,
        "text",
        "text/plain",
        {"lang": "en"},
        datetime.now(UTC),
        chunk,
        "v1",
        [0.1],
    )
    point = indexed.point()
    assert point.id == domain.point_id("acme", "d" * 64, "c" * 64, "v1")
    assert (point.dense, point.sparse) == ([0.1], chunk.terms)
    assert point.payload == {
        "tenant_id": "acme",
        "document_id": "d" * 64,
        "atom_id": "c" * 64,
        "chunk_index": 3,
        "model_version": "v1",
        "modality": "text",
        "mime_type": "text/plain",
        "snippet": "snippet",
        "meta": {"lang": "en"},
    }


# ---------------------------------------------------------------------------------------
# Queries


def test_k_defaults_to_ten() -> None:
    assert domain.parse_query("acme", "q", 0, Mode.DENSE).k == 10
    assert domain.parse_query("acme", "q", 100, Mode.DENSE).k == 100


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "q", 1), "tenant_id is required"),
        (("acme", "  ", 1), "query is empty"),
        (("acme", "ü" * 2049, 1), "longer than 4096 bytes"),
        (("acme", "q", 101), "k must be in"),
        (("acme", "q", -1), "k must be in"),
    ],
)
def test_invalid_queries_name_their_problem(args: tuple[str, str, int], message: str) -> None:
    with pytest.raises((InvalidQuery, InvalidTenantId), match=message):
        domain.parse_query(*args, Mode.HYBRID)


@pytest.mark.parametrize(
    ("modality", "metadata", "message"),
    [
        ("hologram", {}, "unknown modality"),
        ("", {"meta.lang": "en"}, "metadata key 'meta.lang'"),
        ("", {"a]": "x"}, "metadata key"),
        ("", {"k": "v" * 257}, "exceeds 256"),
        ("", {f"k{i}": "v" for i in range(17)}, "at most 16"),
    ],
)
def test_invalid_filters_are_refused(modality: str, metadata: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidQuery, match=message):
        domain.parse_query("acme", "q", 1, Mode.SPARSE, modality, metadata)


def test_the_filter_is_the_tenant_then_the_users_conditions() -> None:
    query = domain.parse_query(
        "globex", "q", 5, Mode.HYBRID, "text", {"tenant_id": "acme", "lang": "en"}
    )
    assert query.filter("v1") == Filter(
        "globex",
        (
            ("modality", "text"),
            ("meta.lang", "en"),
            ("meta.tenant_id", "acme"),  # a metadata key, never the tenant field
            ("model_version", "v1"),
        ),
    )
    assert query.filter() == Filter("globex", query.filter("v1").must[:-1])


def test_distinct_chunks_keep_the_best_point_of_each_chunk() -> None:
    def hit(score: float, document: str, atom: str) -> Hit:
        return Hit(f"{document}{atom}{score}", score, {"document_id": document, "atom_id": atom})

    hits = [hit(0.9, "d", "a"), hit(0.8, "d", "a"), hit(0.7, "e", "a"), hit(0.6, "d", "b")]
    assert domain.distinct_chunks(hits, 2) == [hits[0], hits[2]]

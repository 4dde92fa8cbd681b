"""The ingest rules without I/O: headers, content detection, chunk windows and spans."""

from __future__ import annotations

import itertools
import json
import random
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from hartonomous.events.payloads import UsageRecorded
from hartonomous.tenants import InvalidTenantId
from services.ingest.domain import content, payloads
from services.ingest.domain.chunks import ChunkPolicy, chunk_spans, token_windows
from services.ingest.domain.content import Content, ContentProbe, sniff_signature
from services.ingest.domain.errors import ContentTooLarge, InvalidArgument
from services.ingest.domain.header import IngestHeader, parse_header

SAFETENSORS = (20).to_bytes(8, "little") + b'{"__metadata__":{}} ' + b"\0" * 16


def header(**fields: str) -> IngestHeader:
    return parse_header(tenant_id=fields.pop("tenant_id", "acme"), **fields)


def probe(
    data: bytes,
    fields: dict[str, str] | None = None,
    *,
    part: int = 1 << 20,
    limit: int = 1 << 20,
    prefix: int = 1 << 16,
) -> Content:
    p = ContentProbe(header(**(fields or {})), limit=limit, text_prefix=prefix)
    for start in range(0, len(data), part):
        p.feed(data[start : start + part])
    return p.finish()


# ---------------------------------------------------------------------------------------
# Headers


def test_a_header_is_normalised() -> None:
    h = parse_header(
        tenant_id=" acme ",
        mime_type="Text/CSV; charset=latin-1",
        modality="TEXT",
        metadata_json='{"b": 1, "a": "é"}',
        source_uri=" s3://bucket/a.csv ",
        expected_sha256="AB" * 32,
    )
    assert h == IngestHeader(
        tenant_id="acme",
        mime_type="text/csv; charset=utf-8",
        modality="text",
        metadata_json='{"a":"é","b":1}',
        source_uri="s3://bucket/a.csv",
        expected_sha256="ab" * 32,
        traceparent=None,
        request_id=None,
        api_key_id=None,
    )
    assert header().metadata_json == "{}" and header().mime_type is None


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tenant_id": ""}, "tenant_id is required"),
        ({"tenant_id": "a\nb"}, "printable"),
        ({"tenant_id": "x" * 129}, "at most 128"),
        ({"metadata_json": "{"}, "not valid JSON"),
        ({"metadata_json": '"just a string"'}, "must be a JSON object, got a str"),
        ({"metadata_json": json.dumps({"k": "v" * 16384})}, "over 16384 bytes"),
        ({"modality": "smell"}, "modality 'smell' is not supported"),
        ({"mime_type": "nonsense"}, "not a media type"),
        ({"expected_sha256": "abc"}, "expected_sha256 must be a SHA-256"),
        ({"source_uri": "x" * 2049}, "source_uri is over"),
    ],
)
def test_bad_headers_are_named(fields: dict[str, str], message: str) -> None:
    with pytest.raises((InvalidArgument, InvalidTenantId), match=message):
        header(**fields)


def test_the_default_size_limit_is_256_mib() -> None:
    assert content.MAX_CONTENT_BYTES == 256 * 1024 * 1024


# ---------------------------------------------------------------------------------------
# Detection


@pytest.mark.parametrize(
    ("head", "mime", "modality"),
    [
        (b"%PDF-1.7\n%\xe2\xe3", "application/pdf", "binary"),
        (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR", "image/png", "image"),
        (b"\xff\xd8\xff\xe0\0\x10JFIF", "image/jpeg", "image"),
        (b"GIF89a\x01\0\x01\0", "image/gif", "image"),
        (b"RIFF\x24\0\0\0WEBPVP8 ", "image/webp", "image"),
        (b"RIFF\x24\0\0\0WAVEfmt ", "audio/wav", "audio"),
        (b"ID3\x04\0\0\0\0\0\0", "audio/mpeg", "audio"),
        (b"\xff\xfb\x90\x64\0\0", "audio/mpeg", "audio"),
        (b"OggS\0\x02\0\0", "audio/ogg", "audio"),
        (b"fLaC\0\0\0\x22", "audio/flac", "audio"),
        (b"\0\0\0\x20ftypisom", "video/mp4", "video"),
        (b"PK\x03\x04\x14\0\0\0", "application/zip", "binary"),
        (b"\x1f\x8b\x08\0", "application/gzip", "binary"),
        (SAFETENSORS, content.SAFETENSORS_MIME, "model"),
    ],
)
def test_signatures(head: bytes, mime: str, modality: str) -> None:
    assert sniff_signature(head[: content.SNIFF_BYTES]) == content.Format(mime, modality)
    # Fed a byte at a time, the stream is classified the same.
    got = probe(head + b"\x80" * 64, part=1)
    assert (got.mime_type, got.modality, got.text) == (mime, modality, None)


@pytest.mark.parametrize(
    "head",
    [
        b"\xff\xf1\x50\x80",  # AAC ADTS (layer 00), not MPEG audio
        (10**9).to_bytes(8, "little") + b"{",  # a safetensors header this long is not one
        b"plain words here",
    ],
)
def test_near_misses_are_not_signatures(head: bytes) -> None:
    assert sniff_signature(head) is None


@pytest.mark.parametrize(
    ("data", "fields", "mime"),
    [
        (b"hello world", {}, "text/plain; charset=utf-8"),
        ("naïve 東京".encode(), {}, "text/plain; charset=utf-8"),
        (b' {"a": [1, 2]}\n', {}, "application/json"),
        (b"[1, 2, 3]", {}, "application/json"),
        (b"{not json", {}, "text/plain; charset=utf-8"),
        (b'"a json string"', {}, "text/plain; charset=utf-8"),
        (b"# Title\n\nbody", {}, "text/markdown; charset=utf-8"),
        (b"intro\n```python\nx = 1\n```\n", {}, "text/markdown; charset=utf-8"),
        (b"body", {"source_uri": "docs/README.md?raw=1"}, "text/markdown; charset=utf-8"),
        (b"body", {"mime_type": "text/markdown"}, "text/markdown; charset=utf-8"),
        (b"a,b\n1,2\n", {"mime_type": "text/csv"}, "text/csv; charset=utf-8"),
        (b"body", {"mime_type": "application/octet-stream"}, "text/plain; charset=utf-8"),
        (b"<svg/>", {"mime_type": "image/svg+xml"}, "image/svg+xml"),
    ],
)
def test_text_formats(data: bytes, fields: dict[str, str], mime: str) -> None:
    got = probe(data, fields)
    assert got.mime_type == mime and got.size == len(data)
    if got.modality == "text":
        assert got.text == data.decode()
    else:
        assert got.text is None and mime == "image/svg+xml" and got.modality == "image"


@pytest.mark.parametrize(
    ("data", "fields", "mime", "modality"),
    [
        (b"\x00\x01\x02binary", {}, "application/octet-stream", "binary"),
        (b"ok\x00nul", {}, "application/octet-stream", "binary"),
        (b"\xc3", {}, "application/octet-stream", "binary"),  # a truncated character
        (b"\x80\x81", {"mime_type": "video/x-matroska"}, "video/x-matroska", "video"),
        (b"\x80\x81", {"modality": "tensor"}, "application/octet-stream", "tensor"),
    ],
)
def test_other_bytes_are_binary(
    data: bytes, fields: dict[str, str], mime: str, modality: str
) -> None:
    got = probe(data, fields, part=1)
    assert (got.mime_type, got.modality, got.text) == (mime, modality, None)


@pytest.mark.parametrize(
    ("data", "fields", "message"),
    [
        (
            b"%PDF-1.4 rest",
            {"mime_type": "image/png"},
            "is image/png but the bytes are application/pdf",
        ),
        (
            b"%PDF-1.4 rest",
            {"modality": "image"},
            "modality is image but the bytes are application/pdf",
        ),
        (b"\x00\x01binary", {"mime_type": "text/plain"}, "but the bytes are not UTF-8 text"),
        (b"\x00\x01binary", {"mime_type": "image/png"}, "but the bytes are not UTF-8 text"),
        (b"\x00\x01binary", {"modality": "text"}, "modality is text but the bytes are not UTF-8"),
        (b"just words", {"mime_type": "image/png"}, "is image/png but the bytes are UTF-8 text"),
        (b"just words", {"mime_type": "application/json"}, "not a JSON object or array"),
    ],
)
def test_declarations_that_contradict_the_bytes_are_refused(
    data: bytes, fields: dict[str, str], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        probe(data, fields, part=3)


def test_a_contradiction_is_caught_from_the_first_bytes() -> None:
    p = ContentProbe(header(mime_type="image/png"), limit=1 << 30, text_prefix=1024)
    with pytest.raises(InvalidArgument):
        p.feed(b"%PDF-1.7 and a long document follows")


def test_the_size_limit_holds_while_streaming() -> None:
    p = ContentProbe(header(), limit=10, text_prefix=4)
    p.feed(b"0123456789")
    with pytest.raises(ContentTooLarge, match="over the 10 byte limit"):
        p.feed(b"x")


def test_empty_content_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="no content"):
        probe(b"")


def test_a_large_text_keeps_only_its_prefix_cut_at_a_character() -> None:
    data = "é".encode() * 100  # 200 bytes of two-byte characters
    got = probe(data, part=7, prefix=51)
    assert got.modality == "text" and got.size == 200
    assert got.text == "é" * 25  # 51 bytes hold 25 whole characters
    # JSON can only be confirmed whole: a large JSON-looking text stays plain unless declared.
    big_json = b"[" + b"1," * 100 + b"1]"
    assert probe(big_json, prefix=16).mime_type == "text/plain; charset=utf-8"
    declared = probe(big_json, {"mime_type": "application/json"}, prefix=16)
    assert declared.mime_type == "application/json"


# ---------------------------------------------------------------------------------------
# Chunk windows and spans


def _words(rng: random.Random, n: int) -> list[int]:
    """Word-start flags of n tokens: words of 1-8 pieces."""
    flags: list[int] = []
    while len(flags) < n:
        flags += [1] + [0] * rng.randrange(8)
    return flags[:n]


@pytest.mark.parametrize("seed", range(20))
def test_windows_are_bounded_word_aligned_overlapping_and_cover_everything(seed: int) -> None:
    rng = random.Random(seed)
    size, overlap = rng.choice([(200, 32), (16, 4), (10, 0), (30, 29)])
    starts = _words(rng, rng.randrange(1, 3000))
    windows = token_windows(starts, size, overlap)
    assert windows[0][0] == 0 and windows[-1][1] == len(starts)
    for (s0, e0), (s1, e1) in itertools.pairwise(windows):
        assert s0 < s1 <= e0 < e1  # progress, and no gap
        assert e0 - s1 <= overlap
    for start, end in windows:
        assert 0 < end - start <= size
        # Word boundaries always fit when a window advances by more than a word (8 pieces).
        if size - overlap >= 8:
            assert starts[start] and (end == len(starts) or starts[end])


def test_a_word_longer_than_a_window_is_cut_inside() -> None:
    # No word starts inside the overlap either, so each window starts where the last ended.
    assert token_windows([1] + [0] * 9, 4, 1) == [(0, 4), (4, 8), (8, 10)]


def test_no_tokens_is_one_empty_window() -> None:
    assert token_windows([], 200, 32) == [(0, 0)]


def test_spans_map_characters_to_bytes_and_cover_the_text() -> None:
    text = " naïve 東京 café "
    # tokens: naïve [1,6), 東 [7,8), 京 [8,9), café [10,14)
    spans = chunk_spans(text, [1, 7, 8, 10], [6, 8, 9, 14], [(0, 2), (1, 4)])
    data = text.encode()
    assert [(s.start_char, s.end_char) for s in spans] == [(0, 8), (7, len(text))]
    for span in spans:
        assert (
            data[span.start_byte : span.end_byte] == text[span.start_char : span.end_char].encode()
        )


def test_chunk_policy_fits_the_model_window() -> None:
    assert ChunkPolicy().chunker == "minilm-wordpiece/v1 tokens=200 overlap=32 max_bytes=1048576"
    with pytest.raises(ValueError, match="chunk tokens"):
        ChunkPolicy(tokens=255)
    with pytest.raises(ValueError, match="overlap"):
        ChunkPolicy(tokens=10, overlap=10)


def test_usage_is_metered_in_bytes_per_atom() -> None:
    at = datetime(2025, 1, 2, tzinfo=UTC)
    usage = payloads.usage_payload(header(api_key_id="k1"), "a" * 64, 1234, True, at)
    assert usage == UsageRecorded(
        tenant_id="acme",
        operation="ingest",
        unit="bytes",
        quantity=Decimal("1234.000000000"),
        resource_id="a" * 64,
        used_at=at,
        api_key_id="k1",
        dimensions={"deduplicated": "true"},
    )

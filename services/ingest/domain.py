"""The ingest service's rules, free of I/O: what a valid header is, what the bytes are (modality
and media type, sniffed while they stream), where text is cut into chunks, and the payloads of
the events an ingest appends, and the periods and payloads of storage metering.

Large texts: only the first `ChunkPolicy.max_bytes` (1 MiB by default) of a text atom are
chunked. The whole atom is stored and addressed; its chunks cover that prefix, and the chunker
string on AtomChunked says so (`max_bytes=`). This bounds the memory, the AtomChunked event
(a few thousand chunks, some hundred KB: within Kafka's default 1 MB record limit) and the
embedding work per atom.
"""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from hartonomous.events import named_event_id, usage_quantity

PRODUCED_BY = "ingest"
ATOMS_TOPIC = "atoms"
USAGE_TOPIC = "usage"

MAX_CONTENT_BYTES = 256 * 1024 * 1024
MAX_METADATA_BYTES = 16 * 1024
MAX_TENANT_ID_CHARS = 128
MAX_SOURCE_URI_CHARS = 2048

MODALITIES = frozenset({"text", "image", "audio", "video", "model", "tensor", "binary"})
OCTET_STREAM = "application/octet-stream"
JSON_MIME = "application/json"
MARKDOWN = "text/markdown"
PLAIN_TEXT = "text/plain"
SAFETENSORS_MIME = "application/vnd.safetensors"

SNIFF_BYTES = 16
"""Every signature below is decided by the first 16 bytes."""

SAFETENSORS_MAX_HEADER = 100_000_000
"""The safetensors format caps its JSON header at 100 MB; a larger length is not safetensors."""

MAX_CHUNK_TOKENS = 254
"""The model reads 256 word pieces, [CLS] and [SEP] included."""

STORAGE_PERIOD = timedelta(hours=1)
"""How often each tenant's storage is measured and billed, by default."""

_HEX = re.compile(r"[0-9a-f]{64}")
_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]*"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_MARKDOWN_HINT = re.compile(r"\A\s*#{1,6} \S|^```", re.MULTILINE)


class IngestError(ValueError):
    """What the caller is told, by type (the API maps each to a status)."""


class InvalidArgument(IngestError):
    pass


class ContentTooLarge(IngestError):
    pass


class AtomNotFound(IngestError):
    """The same answer whether the atom does not exist or is another tenant's: ids reveal
    nothing across tenants."""

    def __init__(self, tenant_id: str, atom_id: str) -> None:
        super().__init__(f"tenant {tenant_id} holds no atom {atom_id}")


# ---------------------------------------------------------------------------------------
# The header


@dataclass(frozen=True)
class IngestHeader:
    tenant_id: str
    mime_type: str | None  # normalised media type, None: detect
    modality: str | None
    metadata_json: str  # canonical JSON object text
    source_uri: str | None
    expected_sha256: str | None
    traceparent: str | None
    request_id: str | None
    api_key_id: str | None


def parse_header(
    *,
    tenant_id: str,
    mime_type: str = "",
    modality: str = "",
    metadata_json: str = "",
    source_uri: str = "",
    expected_sha256: str = "",
    traceparent: str = "",
    request_id: str = "",
    api_key_id: str = "",
) -> IngestHeader:
    """Validate and normalise the header fields (empty strings mean "not given").
    Raises InvalidArgument naming the first problem."""
    return IngestHeader(
        tenant_id=parse_tenant_id(tenant_id),
        mime_type=normalise_mime(mime_type) if mime_type.strip() else None,
        modality=_parse_modality(modality),
        metadata_json=canonical_metadata(metadata_json),
        source_uri=_parse_source_uri(source_uri),
        expected_sha256=parse_atom_id(expected_sha256, "expected_sha256")
        if expected_sha256
        else None,
        traceparent=traceparent.strip() or None,
        request_id=request_id.strip() or None,
        api_key_id=api_key_id.strip() or None,
    )


def parse_tenant_id(raw: str) -> str:
    tenant = raw.strip()
    if not tenant:
        raise InvalidArgument("tenant_id is required")
    if len(tenant) > MAX_TENANT_ID_CHARS or not tenant.isprintable():
        raise InvalidArgument(
            f"tenant_id must be at most {MAX_TENANT_ID_CHARS} printable characters"
        )
    return tenant


def parse_atom_id(raw: str, field: str = "atom_id") -> str:
    atom_id = raw.strip().lower()
    if not _HEX.fullmatch(atom_id):
        raise InvalidArgument(f"{field} must be a SHA-256 hex digest (64 hex characters)")
    return atom_id


def normalise_mime(raw: str) -> str:
    """`Type/Sub; params` -> `type/sub`, with `; charset=utf-8` for text/* (the only text
    encoding accepted, so that is what the bytes are)."""
    media = raw.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(media):
        raise InvalidArgument(f"mime_type {raw!r} is not a media type (type/subtype)")
    media = _MIME_ALIASES.get(media, media)
    return f"{media}; charset=utf-8" if media.startswith("text/") else media


def canonical_metadata(raw: str) -> str:
    """The metadata as canonical JSON (sorted keys, no spaces), so equal metadata is equal text."""
    if not raw.strip():
        return "{}"
    if len(raw.encode()) > MAX_METADATA_BYTES:
        raise InvalidArgument(f"metadata_json is over {MAX_METADATA_BYTES} bytes")
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise InvalidArgument(f"metadata_json is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidArgument(
            f"metadata_json must be a JSON object, got a {type(value).__name__} value"
        )
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _parse_modality(raw: str) -> str | None:
    modality = raw.strip().lower()
    if not modality:
        return None
    if modality not in MODALITIES:
        raise InvalidArgument(
            f"modality {raw!r} is not supported; use one of {', '.join(sorted(MODALITIES))}"
        )
    return modality


def _parse_source_uri(raw: str) -> str | None:
    uri = raw.strip()
    if len(uri) > MAX_SOURCE_URI_CHARS:
        raise InvalidArgument(f"source_uri is over {MAX_SOURCE_URI_CHARS} characters")
    return uri or None


# ---------------------------------------------------------------------------------------
# What the bytes are


@dataclass(frozen=True)
class Format:
    mime_type: str
    modality: str


def _riff(kind: bytes) -> Callable[[bytes], bool]:
    return lambda head: head[:4] == b"RIFF" and head[8:12] == kind


def _mpeg_audio_frame(head: bytes) -> bool:
    """An MPEG audio frame header: 11 sync bits, and neither version nor layer reserved
    (layer 00 is AAC's ADTS, a different format)."""
    return (
        len(head) >= 3
        and head[0] == 0xFF
        and head[1] & 0xE0 == 0xE0
        and head[1] & 0x18 != 0x08
        and head[1] & 0x06 != 0
        and head[2] >> 4 != 0xF
    )


def _safetensors(head: bytes) -> bool:
    """8-byte little-endian header length, then the JSON header itself."""
    length = int.from_bytes(head[:8], "little")
    return len(head) > 8 and 2 <= length <= SAFETENSORS_MAX_HEADER and head[8:9] == b"{"


SIGNATURES: tuple[tuple[Callable[[bytes], bool], Format], ...] = (
    (lambda h: h.startswith(b"%PDF-"), Format("application/pdf", "binary")),
    (lambda h: h.startswith(b"\x89PNG\r\n\x1a\n"), Format("image/png", "image")),
    (lambda h: h.startswith(b"\xff\xd8\xff"), Format("image/jpeg", "image")),
    (lambda h: h[:6] in (b"GIF87a", b"GIF89a"), Format("image/gif", "image")),
    (_riff(b"WEBP"), Format("image/webp", "image")),
    (_riff(b"WAVE"), Format("audio/wav", "audio")),
    (lambda h: h.startswith(b"ID3") or _mpeg_audio_frame(h), Format("audio/mpeg", "audio")),
    (lambda h: h.startswith(b"OggS"), Format("audio/ogg", "audio")),
    (lambda h: h.startswith(b"fLaC"), Format("audio/flac", "audio")),
    (lambda h: h[4:8] == b"ftyp", Format("video/mp4", "video")),
    (lambda h: h[:4] in (b"PK\x03\x04", b"PK\x05\x06"), Format("application/zip", "binary")),
    (lambda h: h.startswith(b"\x1f\x8b"), Format("application/gzip", "binary")),
    (_safetensors, Format(SAFETENSORS_MIME, "model")),
)
SIGNATURE_MIMES = frozenset(fmt.mime_type for _, fmt in SIGNATURES)

_MIME_ALIASES = {
    "audio/x-wav": "audio/wav",
    "audio/wave": "audio/wav",
    "audio/vnd.wave": "audio/wav",
    "audio/mp3": "audio/mpeg",
    "audio/x-flac": "audio/flac",
    "image/jpg": "image/jpeg",
    "application/x-zip-compressed": "application/zip",
    "application/x-gzip": "application/gzip",
    "application/x-pdf": "application/pdf",
}


def sniff_signature(head: bytes) -> Format | None:
    """The binary format the first bytes announce, if any."""
    for matches, fmt in SIGNATURES:
        if matches(head):
            return fmt
    return None


@dataclass(frozen=True)
class Content:
    """What an ingest stream turned out to be."""

    mime_type: str
    modality: str
    size: int
    text: str | None
    """For text atoms: the text to chunk (all of it, or its first ChunkPolicy.max_bytes)."""


class ContentProbe:
    """Watches an ingest stream pass, keeping O(text_prefix) bytes: counts and caps the size,
    sniffs the signature from the first bytes, checks that the whole stream is UTF-8 text
    without NULs, and keeps the first `text_prefix` bytes of a text for JSON detection and
    chunking. `feed` and `finish` raise the caller's errors as soon as they are certain."""

    def __init__(self, header: IngestHeader, *, limit: int, text_prefix: int) -> None:
        self._header = header
        self._limit = limit
        self._text_prefix = text_prefix
        self._size = 0
        self._head = b""
        self._signature: Format | None = None
        # None once the bytes are known not to be text.
        self._decoder: codecs.IncrementalDecoder | None = codecs.getincrementaldecoder("utf-8")()
        self._prefix = bytearray()
        self._content: Content | None = None

    def feed(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self._limit:
            raise ContentTooLarge(
                f"content is over the {self._limit} byte limit ({self._limit / 2**20:g} MiB)"
            )
        if len(self._head) < SNIFF_BYTES:
            self._head += data[: SNIFF_BYTES - len(self._head)]
            if len(self._head) == SNIFF_BYTES:
                self._on_head()
        if self._decoder is not None:
            self._check_text(data)

    def finish(self) -> Content:
        if self._size == 0:
            raise InvalidArgument("no content: send the bytes in data messages after the header")
        if len(self._head) < SNIFF_BYTES:
            self._on_head()
        if self._decoder is not None:
            self._check_text(b"", final=True)
        if self._decoder is None:  # early checks wait for 16 bytes: a short stream's are here
            _check_declared_binary(self._header, self._signature)
        text = self._text()
        fmt = self._format(text)
        self._content = Content(
            fmt.mime_type, fmt.modality, self._size, text if fmt.modality == "text" else None
        )
        return self._content

    @property
    def content(self) -> Content:
        """What `finish` found."""
        if self._content is None:
            raise RuntimeError("the stream is not finished")
        return self._content

    @property
    def complete_text(self) -> bool:
        """Whether the kept prefix is the whole text."""
        return self._size <= self._text_prefix

    @property
    def _head_done(self) -> bool:
        return len(self._head) == SNIFF_BYTES

    def _on_head(self) -> None:
        self._signature = sniff_signature(self._head)
        if self._signature is not None:
            self._not_text()
        elif self._decoder is None:
            _check_declared_binary(self._header, None)

    def _not_text(self) -> None:
        self._decoder = None
        self._prefix.clear()
        if self._signature is not None or self._head_done:
            _check_declared_binary(self._header, self._signature)

    def _check_text(self, data: bytes, *, final: bool = False) -> None:
        assert self._decoder is not None
        try:
            if b"\0" in data:
                raise UnicodeError("NUL byte")
            self._decoder.decode(data, final)
        except UnicodeError:
            self._not_text()
            return
        room = self._text_prefix - len(self._prefix)
        if room > 0:
            self._prefix += data[:room]

    def _text(self) -> str | None:
        if self._decoder is None:
            return None
        # A prefix may end inside a character: decode up to the last complete one.
        text, _ = codecs.utf_8_decode(bytes(self._prefix), "strict", self.complete_text)
        return text

    def _format(self, text: str | None) -> Format:
        header = self._header
        declared = header.mime_type
        if self._signature is not None:
            return self._signature
        if text is None:
            mime = declared or OCTET_STREAM
            return Format(mime, header.modality or _modality_of(mime, is_text=False))
        if declared in SIGNATURE_MIMES:
            raise InvalidArgument(
                f"unsupported content: mime_type is {declared} but the bytes are UTF-8 text"
            )
        if declared in (None, OCTET_STREAM):
            fmt = self._text_format(text)
        elif declared == JSON_MIME and self.complete_text and not _is_json_document(text):
            raise InvalidArgument(
                "mime_type is application/json but the bytes are not a JSON object or array"
            )
        else:  # any other declared type of text (text/csv, image/svg+xml, ...) is taken
            fmt = Format(declared, _modality_of(declared, is_text=True))
        return Format(fmt.mime_type, header.modality or fmt.modality)

    def _text_format(self, text: str) -> Format:
        if self.complete_text and _is_json_document(text):
            return Format(JSON_MIME, "text")
        uri = self._header.source_uri
        path = urlsplit(uri).path.lower() if uri else ""
        if path.endswith((".md", ".markdown")) or _MARKDOWN_HINT.search(text[:4096]):
            return Format(normalise_mime(MARKDOWN), "text")
        return Format(normalise_mime(PLAIN_TEXT), "text")


def _check_declared_binary(header: IngestHeader, signature: Format | None) -> None:
    """Bytes that are not text (a known format, or unknown binary): a declared media type or
    modality must agree with them."""
    if signature is not None:
        found = signature.mime_type
        bad_mime = header.mime_type not in (None, OCTET_STREAM, signature.mime_type)
        bad_modality = header.modality not in (None, signature.modality)
    else:
        found = "not UTF-8 text"
        bad_mime = header.mime_type in SIGNATURE_MIMES or _is_text_mime(header.mime_type)
        bad_modality = header.modality == "text"
    if bad_mime:
        raise InvalidArgument(
            f"unsupported content: mime_type is {header.mime_type} but the bytes are {found}"
        )
    if bad_modality:
        raise InvalidArgument(
            f"unsupported content: modality is {header.modality} but the bytes are {found}"
        )


def _is_text_mime(mime: str | None) -> bool:
    return mime is not None and (mime.startswith("text/") or mime == JSON_MIME)


def _modality_of(mime: str, *, is_text: bool) -> str:
    top = mime.split("/", 1)[0]
    if top in ("image", "audio", "video"):
        return top
    return "text" if is_text else "binary"


def _is_json_document(text: str) -> bool:
    if text.lstrip()[:1] not in ("{", "["):
        return False
    try:
        return isinstance(json.loads(text), dict | list)
    except ValueError:
        return False


# ---------------------------------------------------------------------------------------
# Chunking math


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


# ---------------------------------------------------------------------------------------
# Emitted events


def ingested_payload(atom_id: str, header: IngestHeader, content: Content) -> dict[str, Any]:
    return {
        "atom_id": atom_id,
        "tenant_id": header.tenant_id,
        "modality": content.modality,
        "mime_type": content.mime_type,
        "size_bytes": content.size,
        "blob_key": atom_id,
        "source_uri": header.source_uri,
        "metadata_json": header.metadata_json,
    }


def referenced_payload(atom_id: str, header: IngestHeader) -> dict[str, Any]:
    return {
        "atom_id": atom_id,
        "tenant_id": header.tenant_id,
        "source_uri": header.source_uri,
        "metadata_json": header.metadata_json,
    }


def chunked_payload(
    parent_id: str, tenant_id: str, chunker: str, chunks: Sequence[Chunk]
) -> dict[str, Any]:
    return {
        "parent_atom_id": parent_id,
        "tenant_id": tenant_id,
        "chunker": chunker,
        "chunks": [
            {
                "index": chunk.index,
                "atom_id": chunk.atom_id,
                "start_char": chunk.span.start_char,
                "end_char": chunk.span.end_char,
                "start_byte": chunk.span.start_byte,
                "end_byte": chunk.span.end_byte,
            }
            for chunk in chunks
        ],
    }


def usage_payload(
    header: IngestHeader, atom_id: str, size: int, deduplicated: bool, used_at: datetime
) -> dict[str, Any]:
    """Ingest is metered in bytes received; a dedup hit is marked so rate cards can price it."""
    return {
        "tenant_id": header.tenant_id,
        "operation": "ingest",
        "unit": "bytes",
        "quantity": usage_quantity(size),
        "resource_id": atom_id,
        "used_at": used_at,
        "api_key_id": header.api_key_id,
        "dimensions": {"deduplicated": "true" if deduplicated else "false"},
    }


# ---------------------------------------------------------------------------------------
# Storage metering

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Holding:
    """What one tenant references at some instant: its atoms and their total size."""

    tenant_id: str
    atoms: int
    bytes: int


def check_storage_period(every: timedelta) -> None:
    """Periods are whole hours that divide a day: so they start on UTC hours, never straddle a
    day (nor a month, where invoices cut), and bytes x hours is an exact whole number."""
    if every <= timedelta(0) or every % _HOUR or _DAY % every:
        raise ValueError(
            f"the storage metering period must be a whole number of hours that divides 24,"
            f" got {every}"
        )


def storage_periods(
    metered_until: datetime | None, now: datetime, every: timedelta
) -> list[tuple[datetime, datetime]]:
    """The [start, end) periods to measure, oldest first: from where metering stopped to the
    last period boundary at or before `now`. With nothing metered yet, only the period that
    just closed (storage held before metering began is not billed)."""
    last = period_end(now, every) - every
    start = last - every if metered_until is None else metered_until
    periods = []
    while start < last:
        # After a change of `every` the first period may be shorter; there is never a gap.
        end = period_end(start, every)
        periods.append((start, end))
        start = end
    return periods


def period_end(at: datetime, every: timedelta) -> datetime:
    """The end of the period holding `at`. Periods are [k * every, (k + 1) * every) from the
    Unix epoch on: they start on UTC hours, and on midnight each day."""
    return at - (at - _EPOCH) % every + every


def storage_event_id(tenant_id: str, start: datetime, end: datetime) -> str:
    """One id per tenant and period, whoever measures it and however often."""
    name = f"StorageMeasured\0{tenant_id}\0{_interval(start, end)}"
    return named_event_id((end - _EPOCH) // timedelta(milliseconds=1), name)


def _interval(start: datetime, end: datetime) -> str:
    """The period as an ISO 8601 interval in UTC: one spelling per period."""
    return f"{start.astimezone(UTC).isoformat()}/{end.astimezone(UTC).isoformat()}"


def storage_payload(holding: Holding, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "tenant_id": holding.tenant_id,
        "atoms": holding.atoms,
        "bytes": holding.bytes,
        "period_start": start,
        "period_end": end,
    }


def storage_usage_payload(holding: Holding, start: datetime, end: datetime) -> dict[str, Any]:
    """Storage is metered in byte-hours: the bytes held times the period's whole hours. The
    usage is dated at the period's start, so it falls in the day the period covers."""
    hours, rest = divmod(end - start, _HOUR)
    if rest:
        raise ValueError(f"storage period {start} to {end} is not a whole number of hours")
    return {
        "tenant_id": holding.tenant_id,
        "operation": "storage",
        "unit": "byte_hours",
        "quantity": usage_quantity(holding.bytes * hours),
        "resource_id": _interval(start, end),
        "used_at": start,
        "api_key_id": None,
        "dimensions": {},
    }


# ---------------------------------------------------------------------------------------
# What callers get back


@dataclass(frozen=True)
class IngestResult:
    atom_id: str
    deduplicated: bool
    modality: str
    mime_type: str
    size_bytes: int
    chunk_atom_ids: list[str]
    request_id: str


@dataclass(frozen=True)
class AtomView:
    """A catalog atom as one tenant sees it."""

    atom_id: str
    modality: str
    mime_type: str
    size_bytes: int
    metadata_json: str
    source_uri: str | None
    created_at: datetime
    chunker: str | None
    chunks: list[Chunk]

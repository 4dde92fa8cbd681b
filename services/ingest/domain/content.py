"""What the bytes are: the media type and modality of an ingest stream, sniffed from its first
bytes and checked as it passes (UTF-8 text, or a known binary signature), against what the
header declared."""

from __future__ import annotations

import codecs
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from services.ingest.domain.errors import ContentTooLarge, InvalidArgument

if TYPE_CHECKING:  # the header module imports normalise_mime from here
    from services.ingest.domain.header import IngestHeader

MAX_CONTENT_BYTES = 256 * 1024 * 1024

OCTET_STREAM = "application/octet-stream"
JSON_MIME = "application/json"
MARKDOWN = "text/markdown"
PLAIN_TEXT = "text/plain"
SAFETENSORS_MIME = "application/vnd.safetensors"

SNIFF_BYTES = 16
"""Every signature below is decided by the first 16 bytes."""

SAFETENSORS_MAX_HEADER = 100_000_000
"""The safetensors format caps its JSON header at 100 MB; a larger length is not safetensors."""

_TOKEN = r"[a-z0-9][a-z0-9!#$&^_.+-]*"
_MEDIA_TYPE = re.compile(rf"{_TOKEN}/{_TOKEN}")
_MARKDOWN_HINT = re.compile(r"\A\s*#{1,6} \S|^```", re.MULTILINE)


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


def normalise_mime(raw: str) -> str:
    """`Type/Sub; params` -> `type/sub`, with `; charset=utf-8` for text/* (the only text
    encoding accepted, so that is what the bytes are)."""
    media = raw.split(";", 1)[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(media):
        raise InvalidArgument(f"mime_type {raw!r} is not a media type (type/subtype)")
    media = _MIME_ALIASES.get(media, media)
    return f"{media}; charset=utf-8" if media.startswith("text/") else media


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

"""A multipart/form-data upload read as a stream: the small fields first, then the file's bytes
as they arrive, never the whole file in memory or on disk (Starlette's form parser would spool
it to a temporary file before the handler runs).

Fields must come before the file part (curl -F sends them in the order given)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from python_multipart.multipart import MultipartParser, parse_options_header

from hartonomous.v1 import ingest_pb2
from services.gateway.problems import ProblemError

FILE_FIELD = "file"
MAX_FIELD_BYTES = 64 * 1024
# Well under gRPC's 4 MiB message limit (ingest.proto suggests 1 MiB).
MESSAGE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Upload:
    fields: dict[str, str]
    filename: str
    content_type: str
    data: AsyncIterator[bytes]


@dataclass
class _Part:
    headers: dict[bytes, bytes] = field(default_factory=dict)
    name: str = ""
    value: bytearray = field(default_factory=bytearray)


@dataclass(frozen=True)
class _FileStarts:
    filename: str
    content_type: str


@dataclass(frozen=True)
class _FileEnds:
    pass


@dataclass(frozen=True)
class _Field:
    name: str
    value: str


_Event = _Field | _FileStarts | bytes | _FileEnds


async def open_upload(content_type: str, body: AsyncIterator[bytes]) -> Upload:
    """Read up to the start of the file part; the returned Upload streams the rest."""
    events = _events(content_type, body)
    fields: dict[str, str] = {}
    async for event in events:
        if isinstance(event, _Field):
            fields[event.name] = event.value
        elif isinstance(event, _FileStarts):
            return Upload(fields, event.filename, event.content_type, _file_data(events))
    raise _invalid(f"no {FILE_FIELD!r} part: send the content as a form field named file")


async def message_pieces(data: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """An upload's bytes re-cut into pieces that fit one gRPC message each."""
    async for piece in data:
        for start in range(0, len(piece), MESSAGE_BYTES):
            yield piece[start : start + MESSAGE_BYTES]


async def single(data: bytes) -> AsyncIterator[bytes]:
    """Bytes already in memory as a stream of one piece."""
    yield data


# Ingest rejects a second header (ingest.proto): how an aborted upload tells it to store nothing.
SECOND_ATOM_HEADER = ingest_pb2.IngestRequest(header=ingest_pb2.IngestHeader())


async def atom_messages(
    header: ingest_pb2.IngestHeader, data: AsyncIterator[bytes]
) -> AsyncIterator[ingest_pb2.IngestRequest]:
    """IngestAtom's request stream: the header, then the bytes in message-sized pieces."""
    yield ingest_pb2.IngestRequest(header=header)
    async for piece in message_pieces(data):
        yield ingest_pb2.IngestRequest(data=piece)


async def _file_data(events: AsyncIterator[_Event]) -> AsyncIterator[bytes]:
    async for event in events:
        if isinstance(event, bytes):
            yield event
        elif isinstance(event, _FileEnds):
            break
    else:
        # Raising (not returning) cancels the ingest call: a truncated file is never stored.
        raise _invalid("the body ended inside the file part")
    async for _ in events:  # anything after the file is a mistake we must not ignore
        raise _invalid("fields must come before the file part, and only one file is allowed")


async def _events(content_type: str, body: AsyncIterator[bytes]) -> AsyncIterator[_Event]:
    _, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if not boundary:
        raise _invalid("multipart/form-data without a boundary")
    pending: list[_Event] = []
    part = _Part()
    header_name = bytearray()
    header_value = bytearray()

    def on_part_begin() -> None:
        nonlocal part
        part = _Part()

    def on_header_field(data: bytes, start: int, end: int) -> None:
        header_name.extend(data[start:end])

    def on_header_value(data: bytes, start: int, end: int) -> None:
        header_value.extend(data[start:end])

    def on_header_end() -> None:
        part.headers[bytes(header_name).lower()] = bytes(header_value)
        header_name.clear()
        header_value.clear()

    def on_headers_finished() -> None:
        _, disposition = parse_options_header(part.headers.get(b"content-disposition", b""))
        part.name = disposition.get(b"name", b"").decode("utf-8", "replace")
        if part.name == FILE_FIELD:
            filename = disposition.get(b"filename", b"").decode("utf-8", "replace")
            mime = part.headers.get(b"content-type", b"").decode("latin-1").strip()
            pending.append(_FileStarts(filename, mime))

    def on_part_data(data: bytes, start: int, end: int) -> None:
        if part.name == FILE_FIELD:
            pending.append(data[start:end])
            return
        part.value.extend(data[start:end])
        if len(part.value) > MAX_FIELD_BYTES:
            raise _invalid(f"form field {part.name!r} is over {MAX_FIELD_BYTES} bytes")

    def on_part_end() -> None:
        if part.name == FILE_FIELD:
            pending.append(_FileEnds())
        else:
            pending.append(_Field(part.name, part.value.decode("utf-8", "replace")))

    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": on_part_begin,
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
            "on_part_data": on_part_data,
            "on_part_end": on_part_end,
        },
    )
    async for chunk in body:
        try:
            parser.write(chunk)
        except ProblemError:
            raise
        except Exception as exc:  # python-multipart's parse errors
            raise _invalid(f"malformed multipart body: {exc}") from None
        for event in _coalesced(pending):
            yield event
        pending.clear()
    parser.finalize()
    for event in _coalesced(pending):
        yield event


def _coalesced(events: list[_Event]) -> list[_Event]:
    """Adjacent byte pieces of one network read joined: fewer, larger gRPC messages."""
    out: list[_Event] = []
    for event in events:
        if isinstance(event, bytes) and out and isinstance(out[-1], bytes):
            out[-1] = out[-1] + event
        else:
            out.append(event)
    return out


def _invalid(detail: str) -> ProblemError:
    return ProblemError(422, detail, kind="invalid-request")

"""Multipart uploads stream through the gateway to ingest as they arrive (never held whole),
and a malformed or oversized upload cancels the ingest call, so nothing is stored."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from tests.integration.gateway.conftest import MIB, Gateway

pytestmark = pytest.mark.asyncio(loop_scope="module")

BOUNDARY = "hartonomous-test-boundary"
CONTENT_TYPE = f"multipart/form-data; boundary={BOUNDARY}"


def field(name: str, value: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
    ).encode()


def file_head(filename: str, mime: str) -> bytes:
    return (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"'
        f"\r\nContent-Type: {mime}\r\n\r\n"
    ).encode()


END = f"\r\n--{BOUNDARY}--\r\n".encode()


async def post(gw: Gateway, body: AsyncIterator[bytes] | bytes) -> Any:
    headers = {**gw.auth(), "Content-Type": CONTENT_TYPE}
    return await gw.http.post("/v1/atoms", content=body, headers=headers)


async def test_the_file_reaches_ingest_before_the_client_has_sent_it_all(gw: Gateway) -> None:
    piece = b"0123456789abcdef" * 4096  # 64 KiB

    async def body() -> AsyncIterator[bytes]:
        yield field("modality", "binary") + field("metadata", json.dumps({"k": 1}))
        yield file_head("weights.bin", "application/octet-stream") + piece
        # A gateway that buffered the upload would never let ingest see this first piece.
        for _ in range(200):
            if gw.peers.ingest.uploads and gw.peers.ingest.uploads[0].first_data.is_set():
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("ingest saw no bytes while the client was still sending")
        for _ in range(47):
            yield piece
        yield END

    reply = await post(gw, body())
    assert reply.status_code == 201, reply.text
    (upload,) = gw.peers.ingest.uploads
    assert upload.outcome == "stored" and len(upload.data) == 48 * len(piece)
    assert max(upload.sizes) <= MIB
    header = upload.header
    assert (header.modality, header.metadata_json, header.source_uri) == (
        "binary",
        '{"k": 1}',
        "weights.bin",
    )
    assert header.mime_type == ""  # "application/octet-stream" says nothing: ingest detects


async def test_a_field_after_the_file_cancels_the_ingest(gw: Gateway) -> None:
    body = file_head("a.txt", "text/plain") + b"hello" + b"\r\n" + field("modality", "text")
    reply = await post(gw, body + f"--{BOUNDARY}--\r\n".encode())
    assert reply.status_code == 422
    assert "before the file" in reply.json()["detail"]
    (upload,) = gw.peers.ingest.uploads
    await asyncio.sleep(0.1)
    assert upload.outcome == "rejected"


async def test_a_body_that_ends_inside_the_file_stores_nothing(gw: Gateway) -> None:
    reply = await post(gw, file_head("a.txt", "text/plain") + b"half a fi")
    assert reply.status_code == 422
    await asyncio.sleep(0.1)
    assert [u.outcome for u in gw.peers.ingest.uploads] == ["rejected"]


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (field("modality", "text") + f"--{BOUNDARY}--\r\n".encode(), "no 'file' part"),
        (field("colour", "red") + file_head("a", "text/plain") + b"x" + END, "unknown form"),
        (field("metadata", "x" * (65 * 1024)) + END, "over 65536 bytes"),
    ],
)
async def test_malformed_forms_are_422(gw: Gateway, body: bytes, why: str) -> None:
    reply = await post(gw, body)
    assert reply.status_code == 422 and why in reply.json()["detail"]
    assert reply.headers["content-type"] == "application/problem+json"


async def test_an_upload_over_the_limit_is_cut_off_with_413(gw: Gateway) -> None:
    async def body() -> AsyncIterator[bytes]:  # no Content-Length: the limit counts as it goes
        yield file_head("big.bin", "application/octet-stream")
        for _ in range(5 * 16):
            yield b"\0" * (64 * 1024)
        yield END

    reply = await post(gw, body())
    assert reply.status_code == 413
    await asyncio.sleep(0.1)
    assert [u.outcome for u in gw.peers.ingest.uploads] == ["rejected"]


async def test_a_header_the_service_refuses_is_its_422_even_while_the_file_is_in_flight(
    gw: Gateway,
) -> None:
    """Ingest refuses at the header while the gateway still writes the file: a write can lose
    that race in grpc's core and read its own INTERNAL ("Internal error from Core") instead of
    the status the service sent; the caller must still get the service's answer."""
    gw.peers.script.failures["IngestAtom"] = (grpc.StatusCode.INVALID_ARGUMENT, "bad modality")
    body = field("modality", "AAA") + file_head("a.bin", "application/octet-stream")
    body += b"\0" * (3 * MIB) + END
    statuses = [(await post(gw, body)).status_code for _ in range(40)]
    assert statuses == [422] * 40

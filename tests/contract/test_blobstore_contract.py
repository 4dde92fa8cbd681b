"""The BlobStore contract runs once per adapter: the directory and S3 (a real moto S3 server)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from hartonomous.blobs import (
    BlobError,
    BlobHashMismatchError,
    BlobNotFoundError,
    BlobStore,
    open_blob_store,
)
from hartonomous.blobs.embedded import DirectoryBlobStore
from hartonomous.blobs.s3 import S3BlobStore
from hartonomous.settings import Settings
from tests.support import s3_server


@dataclass
class Harness:
    store: BlobStore
    # Everything the backend holds: file paths or object keys (relative to the store's root or
    # prefix), plus "upload:<key>" for each unfinished S3 multipart upload.
    listing: Callable[[], list[str]]


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


@pytest.fixture
def s3_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in s3_server.CREDENTIALS.items():
        monkeypatch.setenv(name, value)


def s3_listing(bucket: str, prefix: str) -> list[str]:
    client = s3_server.s3_client()
    keys = [
        obj["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
        for obj in page.get("Contents", [])
    ]
    uploads = client.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    keys += [f"upload:{upload['Key']}" for upload in uploads]
    return sorted(key.removeprefix(f"{prefix}/") for key in keys)


@pytest.fixture(params=["directory", "s3"])
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    if request.param == "directory":
        root = tmp_path / "blobs"
        yield Harness(
            open_blob_store(Settings(data_dir=tmp_path)),
            lambda: sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()),
        )
    else:
        request.getfixturevalue("s3_env")
        bucket, prefix = s3_server.new_bucket(), "tenant/blobs"
        store = open_blob_store(Settings(blob_url=s3_server.blob_url(bucket, prefix)))
        yield Harness(store, lambda: s3_listing(bucket, prefix))


def blob_path(sha: str) -> str:
    return f"sha256/{sha[:2]}/{sha[2:4]}/{sha}"


async def test_round_trip_is_content_addressed_and_idempotent(harness: Harness) -> None:
    store = harness.store
    data = b"hello " * 1000
    sha = hashlib.sha256(data).hexdigest()
    assert not await store.exists(sha)
    ref = await store.put(stream(data[:100], data[100:]))
    again = await store.put(stream(data), expected_sha256=sha)
    assert ref.sha256 == again.sha256 == sha and ref.size == again.size == len(data)
    assert await store.exists(sha)
    assert await store.get(sha) == data
    assert harness.listing() == [blob_path(sha)]  # no temporary object left behind


async def test_an_empty_blob_round_trips(harness: Harness) -> None:
    sha = hashlib.sha256(b"").hexdigest()
    ref = await harness.store.put(stream())
    assert (ref.sha256, ref.size) == (sha, 0)
    assert await harness.store.get(sha) == b""


async def test_a_hash_mismatch_stores_nothing(harness: Harness) -> None:
    data = os.urandom(1000)
    with pytest.raises(BlobHashMismatchError):
        await harness.store.put(stream(data), expected_sha256="0" * 64)
    assert not await harness.store.exists(hashlib.sha256(data).hexdigest())
    assert harness.listing() == []


async def test_a_multipart_mismatch_stores_nothing(harness: Harness) -> None:
    part = os.urandom(1 << 20)
    with pytest.raises(BlobHashMismatchError):
        await harness.store.put(stream(*[part] * 12), expected_sha256="0" * 64)
    assert harness.listing() == []


async def test_a_failing_stream_stores_nothing(harness: Harness) -> None:
    async def broken() -> AsyncIterator[bytes]:
        yield os.urandom(9 << 20)  # past the first S3 part
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="went away"):
        await harness.store.put(broken())
    assert harness.listing() == []


async def test_a_large_streamed_put_round_trips_in_bounded_chunks(harness: Harness) -> None:
    # 20 MiB in odd-sized chunks: several S3 parts and a short last one.
    data = os.urandom(20 << 20)
    sha = hashlib.sha256(data).hexdigest()
    step = 3 << 20 | 12345
    ref = await harness.store.put(
        stream(*[data[i : i + step] for i in range(0, len(data), step)]), expected_sha256=sha
    )
    assert (ref.sha256, ref.size) == (sha, len(data))
    chunks = [chunk async for chunk in harness.store.read(sha)]
    assert max(len(chunk) for chunk in chunks) <= 1 << 20
    assert b"".join(chunks) == data
    assert harness.listing() == [blob_path(sha)]


async def test_delete_removes_a_blob_written_before_the_cutoff_only(harness: Harness) -> None:
    store = harness.store
    ref = await store.put(stream(b"delete me"))
    before = datetime.now(UTC) - timedelta(minutes=1)
    assert not await store.delete(ref.sha256, written_before=before)  # rewritten since: kept
    assert await store.get(ref.sha256) == b"delete me"
    assert await store.delete(ref.sha256, written_before=datetime.now(UTC) + timedelta(minutes=1))
    assert not await store.exists(ref.sha256)
    assert [k for k in harness.listing() if ref.sha256 in k] == []
    after = datetime.now(UTC) + timedelta(minutes=1)
    assert not await store.delete(ref.sha256, written_before=after)  # gone: not an error


async def test_a_missing_blob_is_not_found(harness: Harness) -> None:
    sha = "ab" * 32
    assert not await harness.store.exists(sha)
    with pytest.raises(BlobNotFoundError):
        await harness.store.get(sha)


@pytest.mark.parametrize("bad", ["", "abc", "AB" * 32, "zz" * 32, "../" + "a" * 61])
async def test_malformed_ids_are_rejected(harness: Harness, bad: str) -> None:
    with pytest.raises(BlobError):
        await harness.store.exists(bad)
    with pytest.raises(BlobError):
        await harness.store.get(bad)
    with pytest.raises(BlobError):
        await harness.store.put(stream(b"x"), expected_sha256=bad)
    assert harness.listing() == []


def test_the_settings_pick_the_adapter(tmp_path: Path, s3_env: None) -> None:
    assert isinstance(open_blob_store(Settings(data_dir=tmp_path)), DirectoryBlobStore)
    bucket = s3_server.new_bucket()
    store = open_blob_store(Settings(blob_url=s3_server.blob_url(bucket, "a/b/")))
    assert isinstance(store, S3BlobStore)
    assert (store.bucket, store.prefix) == (bucket, "a/b")
    assert store.key("ab" * 32) == f"a/b/{blob_path('ab' * 32)}"
    assert isinstance(open_blob_store(Settings(blob_url=f"s3://{bucket}")), S3BlobStore)


@pytest.mark.parametrize(
    "url", ["s3://", "http://bucket/x", "s3://bucket?endpint=http://x", "s3://bucket?endpoint"]
)
def test_a_malformed_blob_url_is_rejected(url: str) -> None:
    with pytest.raises(ValueError, match="HARTONOMOUS_BLOB_URL"):
        open_blob_store(Settings(blob_url=url))

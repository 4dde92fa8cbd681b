"""The content-addressed directory blob store."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hartonomous.blobs import (
    BlobError,
    BlobHashMismatchError,
    BlobNotFoundError,
)
from hartonomous.blobs.embedded import DirectoryBlobStore


async def stream(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_put_is_content_addressed_and_idempotent(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    data = b"hello " * 1000
    sha = hashlib.sha256(data).hexdigest()
    ref = await store.put(stream(data[:100], data[100:]))
    again = await store.put(stream(data), expected_sha256=sha)
    assert ref.sha256 == again.sha256 == sha and ref.size == len(data)
    assert store.path(sha) == tmp_path / "sha256" / sha[:2] / sha[2:4] / sha
    assert await store.get(sha) == data
    assert await store.exists(sha)
    assert list((tmp_path / "incoming").iterdir()) == []  # no temp file left behind


async def test_a_hash_mismatch_stores_nothing(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    wrong = "0" * 64
    with pytest.raises(BlobHashMismatchError):
        await store.put(stream(b"payload"), expected_sha256=wrong)
    assert not await store.exists(hashlib.sha256(b"payload").hexdigest())
    assert list((tmp_path / "incoming").iterdir()) == []


async def test_missing_and_malformed_ids_are_typed_errors(tmp_path: Path) -> None:
    store = DirectoryBlobStore(tmp_path)
    with pytest.raises(BlobNotFoundError):
        await store.get("a" * 64)
    with pytest.raises(BlobError):
        await store.get("../../etc/passwd")

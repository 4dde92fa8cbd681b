"""The payload blob port: content-addressed bytes, stored with bounded memory and verified
against their address before anyone can read them (tests/contract/test_blobstore_contract.py
holds every adapter to it)."""

from __future__ import annotations

import abc
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime

READ_CHUNK = 1 << 20


class BlobError(Exception):
    """A blob could not be stored or read."""


class BlobNotFoundError(BlobError):
    pass


class BlobHashMismatchError(BlobError):
    pass


@dataclass(frozen=True)
class BlobRef:
    sha256: str
    size: int


class BlobStore(abc.ABC):
    @abc.abstractmethod
    async def put(
        self, chunks: AsyncIterable[bytes], expected_sha256: str | None = None
    ) -> BlobRef:
        """Store a stream with bounded memory; verify `expected_sha256` when given."""

    @abc.abstractmethod
    async def exists(self, sha256: str) -> bool: ...

    @abc.abstractmethod
    def read(self, sha256: str) -> AsyncIterator[bytes]:
        """The blob's bytes in chunks (raises BlobNotFoundError)."""

    @abc.abstractmethod
    async def delete(self, sha256: str, *, written_before: datetime) -> bool:
        """Remove the blob unless it was (re)written at or after `written_before`: an upload of
        the same bytes racing the delete keeps them. True when removed; a missing blob is not
        an error (False)."""

    async def get(self, sha256: str) -> bytes:
        return b"".join([chunk async for chunk in self.read(sha256)])


def check_hex(sha256: str) -> str:
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
        raise BlobError(f"not a lowercase hex SHA-256: {sha256!r}")
    return sha256

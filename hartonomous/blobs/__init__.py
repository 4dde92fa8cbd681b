"""Payload blobs: the port and its adapters; `open_blob_store` picks one from settings
(configuration only): an S3-compatible object store when HARTONOMOUS_BLOB_URL is set (see
`hartonomous.blobs.s3` for the URL format), else the directory under the data dir."""

from __future__ import annotations

from hartonomous.blobs.port import (
    BlobError,
    BlobHashMismatchError,
    BlobNotFoundError,
    BlobRef,
    BlobStore,
)
from hartonomous.settings import Settings

__all__ = [
    "BlobError",
    "BlobHashMismatchError",
    "BlobNotFoundError",
    "BlobRef",
    "BlobStore",
    "open_blob_store",
]


def open_blob_store(settings: Settings) -> BlobStore:
    if settings.blob_url:
        from hartonomous.blobs.s3 import S3BlobStore  # boto3 loads only where it is used

        return S3BlobStore.from_url(settings.blob_url)
    from hartonomous.blobs.embedded import DirectoryBlobStore

    return DirectoryBlobStore(settings.data_dir / "blobs")

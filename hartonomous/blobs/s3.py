"""The S3-compatible adapter of the blob port (AWS S3, MinIO, Ceph RGW, moto, ...).

Selected by `HARTONOMOUS_BLOB_URL`:

    s3://BUCKET[/PREFIX][?endpoint=URL][&region=REGION]

e.g. `s3://hartonomous/blobs?endpoint=http://127.0.0.1:9000&region=us-east-1`. `endpoint` is the
server's base URL (left out: AWS itself, path-style addressing otherwise); `region` defaults to
boto3's own resolution (AWS_DEFAULT_REGION, ~/.aws/config). Credentials come from the standard
AWS chain: `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN`), profiles, or
an instance role. The bucket must already exist.

Objects are keyed `PREFIX/sha256/ab/cd/<hash>`, the directory store's layout. A put streams the
bytes, hashing them, to a temporary key `PREFIX/incoming/<uuid>` (one PUT when the blob fits in a
part, otherwise a multipart upload in 8 MiB parts, so memory stays bounded), verifies the hash,
then server-side copies to the final key and deletes the temporary object. On any failure the
multipart upload is aborted and the temporary object deleted, so nothing half-written or
mislabelled ever appears under `sha256/`; a crash leaves at worst an orphan under `incoming/`
(a bucket lifecycle rule on that prefix, or on incomplete multipart uploads, reaps it)."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from hartonomous.blobs.port import (
    READ_CHUNK,
    BlobError,
    BlobHashMismatchError,
    BlobNotFoundError,
    BlobRef,
    BlobStore,
    check_hex,
)

# S3 parts must be at least 5 MiB (all but the last).
PART_SIZE = 8 << 20
_QUERY_KEYS = frozenset({"endpoint", "region"})
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


def _is_missing(exc: ClientError) -> bool:
    return exc.response.get("Error", {}).get("Code") in _MISSING_CODES


class _TempUpload:
    """Bytes streamed to one temporary key: buffered up to a part, then multipart."""

    def __init__(self, client: Any, bucket: str, key: str) -> None:
        self.client = client
        self.bucket = bucket
        self.key = key
        self.buffer = bytearray()
        self.upload_id: str | None = None
        self.parts: list[dict[str, Any]] = []

    async def write(self, chunk: bytes) -> None:
        self.buffer += chunk
        while len(self.buffer) >= PART_SIZE:
            part = bytes(self.buffer[:PART_SIZE])
            del self.buffer[:PART_SIZE]
            await self._upload_part(part)

    async def _upload_part(self, part: bytes) -> None:
        if self.upload_id is None:
            created = await asyncio.to_thread(
                self.client.create_multipart_upload, Bucket=self.bucket, Key=self.key
            )
            self.upload_id = str(created["UploadId"])
        number = len(self.parts) + 1
        uploaded = await asyncio.to_thread(
            self.client.upload_part,
            Bucket=self.bucket,
            Key=self.key,
            UploadId=self.upload_id,
            PartNumber=number,
            Body=part,
        )
        self.parts.append({"PartNumber": number, "ETag": uploaded["ETag"]})

    async def finish(self) -> None:
        """Make the temporary object whole (it is still only under `incoming/`)."""
        if self.upload_id is None:
            await asyncio.to_thread(
                self.client.put_object, Bucket=self.bucket, Key=self.key, Body=bytes(self.buffer)
            )
        else:
            if self.buffer:
                await self._upload_part(bytes(self.buffer))
            await asyncio.to_thread(
                self.client.complete_multipart_upload,
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts},
            )
            self.upload_id = None
        self.buffer.clear()

    async def discard(self) -> None:
        """Abort an unfinished multipart upload and delete the temporary object, if any."""
        if self.upload_id is not None:
            await asyncio.to_thread(
                self.client.abort_multipart_upload,
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
            )
            self.upload_id = None
        await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=self.key)


class S3BlobStore(BlobStore):
    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    @classmethod
    def from_url(cls, url: str) -> S3BlobStore:
        """Build the store from an `s3://bucket[/prefix]?endpoint=...&region=...` URL."""
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError(
                f"HARTONOMOUS_BLOB_URL must look like s3://bucket[/prefix], got {url!r}"
            )
        try:
            query = parse_qs(parts.query, strict_parsing=bool(parts.query))
        except ValueError as exc:
            raise ValueError(f"HARTONOMOUS_BLOB_URL has a malformed query: {exc}") from None
        unknown = set(query) - _QUERY_KEYS
        if unknown:
            raise ValueError(
                f"HARTONOMOUS_BLOB_URL has unknown parameters {sorted(unknown)}; "
                f"known: {sorted(_QUERY_KEYS)}"
            )
        endpoint = query.get("endpoint", [None])[-1]
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint,
            region_name=query.get("region", [None])[-1],
            config=Config(
                s3={"addressing_style": "path" if endpoint else "auto"},
                retries={"mode": "standard"},
            ),
        )
        return cls(client, parts.netloc, parts.path)

    def key(self, sha256: str) -> str:
        check_hex(sha256)
        return self._under_prefix(f"sha256/{sha256[:2]}/{sha256[2:4]}/{sha256}")

    def _under_prefix(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    async def put(
        self, chunks: AsyncIterable[bytes], expected_sha256: str | None = None
    ) -> BlobRef:
        if expected_sha256 is not None:
            check_hex(expected_sha256)
        upload = _TempUpload(
            self.client, self.bucket, self._under_prefix(f"incoming/{uuid.uuid4().hex}")
        )
        digest = hashlib.sha256()
        size = 0
        try:
            try:
                async for chunk in chunks:
                    digest.update(chunk)
                    size += len(chunk)
                    await upload.write(chunk)
                await upload.finish()
                sha = digest.hexdigest()
                if expected_sha256 is not None and sha != expected_sha256:
                    raise BlobHashMismatchError(
                        f"content hashes to {sha}, expected {expected_sha256}"
                    )
                final = self.key(sha)
                # Same name, same bytes: a blob already there is the one we would write.
                if not await self._head(final):
                    await asyncio.to_thread(
                        self.client.copy,
                        {"Bucket": self.bucket, "Key": upload.key},
                        self.bucket,
                        final,
                    )
                return BlobRef(sha, size)
            finally:
                await upload.discard()
        except (BotoCoreError, ClientError) as exc:
            raise BlobError(f"could not store a blob in s3://{self.bucket}: {exc}") from exc

    async def _head(self, key: str) -> bool:
        try:
            await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    async def exists(self, sha256: str) -> bool:
        key = self.key(sha256)
        try:
            return await self._head(key)
        except (BotoCoreError, ClientError) as exc:
            raise BlobError(f"could not look up blob {sha256}: {exc}") from exc

    async def delete(self, sha256: str, *, written_before: datetime) -> bool:
        key = self.key(sha256)
        try:
            head = await asyncio.to_thread(self.client.head_object, Bucket=self.bucket, Key=key)
            # LastModified has whole seconds: a write in the same second as the cutoff is
            # counted as after it.
            if head["LastModified"] + timedelta(seconds=1) > written_before:
                return False
            await asyncio.to_thread(self.client.delete_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise BlobError(f"could not delete blob {sha256}: {exc}") from exc
        except BotoCoreError as exc:
            raise BlobError(f"could not delete blob {sha256}: {exc}") from exc
        return True

    async def read(self, sha256: str) -> AsyncIterator[bytes]:
        key = self.key(sha256)
        try:
            response = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _is_missing(exc):
                raise BlobNotFoundError(f"no blob {sha256}") from None
            raise BlobError(f"could not read blob {sha256}: {exc}") from exc
        except BotoCoreError as exc:
            raise BlobError(f"could not read blob {sha256}: {exc}") from exc
        body = response["Body"]
        try:
            while chunk := await asyncio.to_thread(body.read, READ_CHUNK):
                yield chunk
        except BotoCoreError as exc:
            raise BlobError(f"could not read blob {sha256}: {exc}") from exc
        finally:
            body.close()

"""A real S3-compatible server for the suite: moto's S3 server on a free loopback port, started
once per test session in a background thread (it speaks the S3 HTTP API, so the adapter under
test goes through botocore's real wire path). Each test gets its own bucket."""

from __future__ import annotations

import threading
import uuid
from typing import Any

import boto3
from moto.server import ThreadedMotoServer

# moto accepts any credentials; the adapter reads them from the standard AWS variables.
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
REGION = "us-east-1"

_lock = threading.Lock()
_endpoint: str | None = None


def s3_endpoint() -> str:
    """The base URL of a running server."""
    global _endpoint
    with _lock:
        if _endpoint is None:
            server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
            server.start()
            host, port = server.get_host_and_port()
            _endpoint = f"http://{host}:{port}"
        return _endpoint


def s3_client() -> Any:
    return boto3.session.Session(
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    ).client("s3", endpoint_url=s3_endpoint(), region_name=REGION)


def new_bucket() -> str:
    """Create a uniquely named, empty bucket."""
    name = f"blobs-{uuid.uuid4().hex[:12]}"
    s3_client().create_bucket(Bucket=name)
    return name


def blob_url(bucket: str, prefix: str = "") -> str:
    path = f"/{prefix}" if prefix else ""
    return f"s3://{bucket}{path}?endpoint={s3_endpoint()}&region={REGION}"

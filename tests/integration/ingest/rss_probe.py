"""Ingest a large upload through a real gRPC server in this process and report how far its
resident memory rose above where it stood just before (bench/_rss.py), with the reply's fields,
as JSON on the last line of stdout. Run in a subprocess of the test, so the test process's own
heap does not blur the number:

    python -m tests.integration.ingest.rss_probe PG_URL DATA_DIR text MEGABYTES
    python -m tests.integration.ingest.rss_probe PG_URL DATA_DIR model FILE
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from bench._model_files import model_upload
from bench._rss import rss_growth
from hartonomous.modelfiles import smollm2_gguf
from hartonomous.settings import Settings
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc
from services.ingest.service import IngestService
from tests.support.harness import running

MIB = 1 << 20
REPO = Path(__file__).resolve().parents[3]

# An upload of the given kind: with None, a small one to warm up with.
Upload = Callable[[ingest_pb2_grpc.IngestStub, str | None], Awaitable[Message]]


def text_stream(megabytes: int, seed: str) -> Iterator[ingest_pb2.IngestRequest]:
    """A line of UTF-8 text, then `megabytes` MiB more, generated one message at a time."""
    yield ingest_pb2.IngestRequest(header=ingest_pb2.IngestHeader(tenant_id="acme"))
    line = f"{seed} — the ledger is the source of truth; every atom is stored once, café 東京.\n"
    yield ingest_pb2.IngestRequest(data=line.encode())
    block = (line * (MIB // len(line.encode()) + 1)).encode()[:MIB]
    block = block[: len(block.decode(errors="ignore").encode())]  # whole characters only
    for _ in range(megabytes):
        yield ingest_pb2.IngestRequest(data=block)


async def upload_text(stub: ingest_pb2_grpc.IngestStub, megabytes: str | None) -> Message:
    reply: Message = await stub.IngestAtom(
        text_stream(int(megabytes or 0), "payload" if megabytes else "warm-up")
    )
    return reply


async def upload_model(stub: ingest_pb2_grpc.IngestStub, path: str | None) -> Message:
    """The model file at `path`, or SmolLM2's GGUF to warm up with."""
    header = ingest_pb2.ModelHeader(
        tenant_id="acme", name="probe", version="payload" if path else "warm-up"
    )
    reply: Message = await stub.IngestModel(
        model_upload(Path(path) if path else smollm2_gguf(), header)
    )
    return reply


UPLOADS: dict[str, Upload] = {"text": upload_text, "model": upload_model}


async def main(pg_url: str, data_dir: Path, kind: str, arg: str) -> None:
    upload = UPLOADS[kind]
    service = IngestService(gc_every=None, storage_every=None)
    settings = Settings(data_dir=data_dir)
    async with running(service, pg_url=pg_url, settings=settings, consume=False) as harness:
        stub = ingest_pb2_grpc.IngestStub(harness.channel)
        # One small upload first: the channel, the pools and lazy imports are not the payload.
        await upload(stub, None)
        with rss_growth() as rss:
            reply = await upload(stub, arg)
    # Its scalar fields: a reply's lists (a text's chunk ids) would drown a failure message.
    fields = MessageToDict(reply, preserving_proto_field_name=True)
    scalars = {k: v for k, v in fields.items() if not isinstance(v, list | dict)}
    print(json.dumps({"rss_growth_mib": rss.growth_mib, **scalars}))


def probe(
    pg_url: str, data_dir: Path, kind: str, arg: str, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run this probe in a subprocess (with `env` added to its environment); its result."""
    done = subprocess.run(
        [sys.executable, "-m", __name__, pg_url, str(data_dir), kind, arg],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 0, done.stderr[-4000:]
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), sys.argv[3], sys.argv[4]))

"""Ingest a large generated text through a real gRPC server in this process and report the peak
RSS before and after, as JSON on the last line of stdout. Run in a subprocess of the test, so
the test process's own heap does not blur the number:

    python -m tests.integration.ingest.rss_probe PG_URL DATA_DIR MEGABYTES
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
from collections.abc import Iterator
from pathlib import Path

from hartonomous.settings import Settings
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc
from services.ingest.service import IngestService
from tests.support.harness import running

MIB = 1 << 20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def text_stream(megabytes: int, seed: str) -> Iterator[ingest_pb2.IngestRequest]:
    """A line of UTF-8 text, then `megabytes` MiB more, generated one message at a time."""
    yield ingest_pb2.IngestRequest(header=ingest_pb2.IngestHeader(tenant_id="acme"))
    line = f"{seed} — the ledger is the source of truth; every atom is stored once, café 東京.\n"
    yield ingest_pb2.IngestRequest(data=line.encode())
    block = (line * (MIB // len(line.encode()) + 1)).encode()[:MIB]
    block = block[: len(block.decode(errors="ignore").encode())]  # whole characters only
    for _ in range(megabytes):
        yield ingest_pb2.IngestRequest(data=block)


async def main(pg_url: str, data_dir: Path, megabytes: int) -> None:
    service = IngestService(gc_every=None, storage_every=None)
    settings = Settings(data_dir=data_dir)
    async with running(service, pg_url=pg_url, settings=settings, consume=False) as harness:
        stub = ingest_pb2_grpc.IngestStub(harness.channel)
        # One tiny ingest first: the channel, the pools and lazy imports are not the payload.
        await stub.IngestAtom(text_stream(0, "warm-up"))
        before = peak_rss_mib()
        reply = await stub.IngestAtom(text_stream(megabytes, "payload"))
        after = peak_rss_mib()
    result = {
        "peak_rss_before_mib": before,
        "peak_rss_after_mib": after,
        "size_bytes": reply.size_bytes,
        "chunk_count": reply.chunk_count,
        "modality": reply.modality,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])))

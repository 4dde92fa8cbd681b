"""Model ingest on the real platform (`hartonomous up` on a scratch data dir, warm), through
gRPC IngestModel from this process:

- throughput for SmolLM2-135M's GGUF (~100 MB) and a synthetic 2 GiB safetensors file (64
  tensors of 32 MiB), against the physical floor for the same file: `sha256sum FILE && cp FILE
  DEST`, DEST on the same disk (one read, one hash, one write, no fsync). IngestModel does more:
  it writes the file twice (the spool, then the atoms), hashes it twice (the upload, then each
  atom) and fsyncs every atom before its events are appended;
- the platform process's peak RSS growth during each 2 GiB ingest (the largest is reported);
- what a second version costs in storage when it differs from the first in one tensor: how much
  the blob store grows, over the file's size.

Runs alternate (ours, peer, ours, ...). Each of ours is a new version of the same file, whose
atoms the store writes again (a put does not look before it writes), so every run does the
whole work. Medians and bests of REPS runs. The platform, this client and the peer share the
machine's cores and disk; the spool, the blob store and the peer's copy are on one disk."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from bench._model_files import model_upload, one_tensor_changed, write_safetensors
from bench._platform import Platform, platform
from bench._rss import rss_growth
from bench.common import RESULTS, Metric, median, write
from hartonomous.modelfiles import smollm2_gguf
from hartonomous.v1 import ingest_pb2, ingest_pb2_grpc

REPS = 5
SYNTHETIC_TENSORS, SYNTHETIC_TENSOR_MIB = 64, 32  # 2 GiB
PEER = "sha256sum && cp, same disk"
MB = 1e6
LOG = RESULTS / "models-platform.log"


@dataclass
class Runs:
    ours: list[float] = field(default_factory=list)  # seconds
    peer: list[float] = field(default_factory=list)
    rss_growth_mib: list[float] = field(default_factory=list)  # ours


@dataclass(frozen=True)
class Client:
    stub: ingest_pb2_grpc.IngestStub
    tenant_id: str

    async def ingest(self, path: Path, name: str, version: str) -> ingest_pb2.ModelVersion:
        header = ingest_pb2.ModelHeader(tenant_id=self.tenant_id, name=name, version=version)
        reply: ingest_pb2.ModelVersion = await self.stub.IngestModel(model_upload(path, header))
        return reply


def peer_seconds(path: Path, copy: Path) -> float:
    started = time.perf_counter()
    command = 'sha256sum "$0" >/dev/null && cp "$0" "$1"'
    subprocess.run(["sh", "-c", command, str(path), str(copy)], check=True)
    elapsed = time.perf_counter() - started
    copy.unlink()  # now, so its dirty pages are not written back during the next run
    return elapsed


async def alternating_runs(client: Client, path: Path, name: str, scratch: Path, pid: int) -> Runs:
    runs = Runs()
    for run in range(REPS):
        started = time.perf_counter()
        with rss_growth(pid) as rss:
            await client.ingest(path, name, f"run-{run}")
        runs.ours.append(time.perf_counter() - started)
        runs.rss_growth_mib.append(rss.growth_mib)
        runs.peer.append(await asyncio.to_thread(peer_seconds, path, scratch / "copy"))
    print(f"   {name}: {[round(s, 2) for s in runs.ours]} s", file=sys.stderr, flush=True)
    return runs


def throughput(label: str, path: Path, runs: Runs) -> list[Metric]:
    size_mb = path.stat().st_size / MB
    return [
        Metric(
            f"{label} ingest, {which}",
            "MB/s",
            size_mb / pick(runs.ours),
            PEER,
            size_mb / pick(runs.peer),
        )
        for which, pick in (("median", median), ("best", min))
    ]


def stored_bytes(blobs: Path) -> int:
    return sum(p.stat().st_size for p in (blobs / "sha256").rglob("*") if p.is_file())


async def v2_stored_bytes(client: Client, v2: Path, blobs: Path) -> int:
    """How much the blob store grows by ingesting `v2`, its first version held already."""
    before = await asyncio.to_thread(stored_bytes, blobs)
    await client.ingest(v2, "smollm2", "v2")
    return await asyncio.to_thread(stored_bytes, blobs) - before


@dataclass(frozen=True)
class Files:
    scratch: Path
    synthetic: Path  # 2 GiB
    v1: Path  # SmolLM2's GGUF
    v2: Path  # the same with one Q4_1 tensor changed


def model_files(scratch: Path) -> Files:
    synthetic = scratch / "synthetic.safetensors"
    with synthetic.open("wb") as out:
        write_safetensors(out, SYNTHETIC_TENSORS, SYNTHETIC_TENSOR_MIB)
        os.fsync(out.fileno())  # written back now, not under the first run
    v1, v2 = smollm2_gguf(), scratch / "smollm2-v2.gguf"
    v2.write_bytes(one_tensor_changed(v1.read_bytes(), "Q4_1")[0])
    return Files(scratch, synthetic, v1, v2)


async def measure(target: Platform, files: Files) -> list[Metric]:
    async with grpc.aio.insecure_channel(target.grpc_target) as channel:
        stub = ingest_pb2_grpc.IngestStub(channel)  # type: ignore[no-untyped-call]
        client = Client(stub, target.tenant_id)
        await client.ingest(files.v1, "smollm2", "v1")  # a first call's costs are not a run's
        small = await alternating_runs(client, files.v1, "smollm2", files.scratch, target.pid)
        large = await alternating_runs(
            client, files.synthetic, "synthetic", files.scratch, target.pid
        )
        grown = await v2_stored_bytes(client, files.v2, files.scratch / "data" / "blobs")
    return report(files, small, large, grown)


def report(files: Files, small: Runs, large: Runs, v2_grown: int) -> list[Metric]:
    return [
        *throughput("SmolLM2 GGUF", files.v1, small),
        *throughput("2 GiB safetensors", files.synthetic, large),
        Metric(
            "2 GiB ingest: peak RSS growth",
            "MiB",
            max(large.rss_growth_mib),
            higher_is_better=False,
        ),
        Metric(
            "v2 differing in one tensor: new storage",
            "% of file",
            100 * v2_grown / files.v2.stat().st_size,
            higher_is_better=False,
        ),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="bench-models-") as tmp:
        scratch = Path(tmp)
        files = model_files(scratch)
        # The platform spools uploads into the scratch dir too: one disk for every copy.
        with platform(scratch / "data", {"TMPDIR": tmp}, log=LOG) as target:
            metrics = asyncio.run(measure(target, files))
    print(f"wrote {write('models', metrics)}", file=sys.stderr)


if __name__ == "__main__":
    main()

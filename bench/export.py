"""A tenant's export and import (issue 24): documents/s, MB/s and peak RSS of `hartonomous
export` and `hartonomous import` for DOCUMENTS documents, each against a peer on the same bytes
in the same run.

Setup: a fresh platform (`hartonomous up`), DOCUMENTS short documents (standard-library
docstring paragraphs) ingested through `POST /v1/atoms` by INGESTERS clients, and the platform
idle (embedded and indexed) before timing.
- export: `hartonomous export` to a file, as its own process (peak RSS: its high-water mark).
  Peer: `tar cf` of the platform's blob directory, the same bytes as a file-system copy.
- import: `hartonomous import` of that archive into a second fresh platform, as a new tenant.
  Peer: the setup's own ingest of the same documents through the API (4 clients).

BENCH_QUICK=1: 300 documents (a smoke run; figures meaningless); BENCH_EXPORT_DOCUMENTS=N:
N documents.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench._platform import CLI, REPO, Platform, platform
from bench._search_data import stdlib_paragraphs
from bench.common import Metric, write
from bench.latency import ENV, _quiet

QUICK = os.environ.get("BENCH_QUICK") == "1"
DOCUMENTS = int(os.environ.get("BENCH_EXPORT_DOCUMENTS", 300 if QUICK else 10_000))
INGESTERS = 4


def _ingest(target: Platform, texts: list[str]) -> float:
    """Every text through the API; documents/s."""
    headers = {"Authorization": f"Bearer {target.key}"}
    with httpx.Client(base_url=target.url, headers=headers, timeout=120) as http:

        def one(text: str) -> None:
            http.post("/v1/atoms", json={"content": text}).raise_for_status()

        started = time.perf_counter()
        with ThreadPoolExecutor(INGESTERS) as pool:
            for done, _ in enumerate(pool.map(one, texts), 1):
                if done % 1000 == 0:
                    print(f"ingested {done}/{len(texts)}", file=sys.stderr, flush=True)
        return len(texts) / (time.perf_counter() - started)


def _timed_cli(data_dir: Path, target: Platform, *args: str) -> tuple[float, float]:
    """A `hartonomous` command against `target`: seconds, and its peak RSS in MiB."""
    port = target.grpc_target.rsplit(":", 1)[1]
    command = [str(CLI), *args, "--data-dir", str(data_dir), "--grpc-port", port]
    started = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{args[0]} failed ({status})")
    return seconds, usage.ru_maxrss / 1024  # kB


def _tar_seconds(blobs: Path, out: Path) -> float:
    started = time.perf_counter()
    subprocess.run(["tar", "cf", str(out), "-C", str(blobs), "sha256"], check=True)
    return time.perf_counter() - started


def main() -> None:
    texts = list(dict.fromkeys(stdlib_paragraphs(DOCUMENTS)))
    metrics: list[Metric] = []
    with tempfile.TemporaryDirectory(prefix="bench-export-") as scratch:
        root = Path(scratch)
        archive, copy = root / "export.tar", root / "blobs.tar"
        source_dir, target_dir = root / "source", root / "target"
        with platform(source_dir, ENV, role="admin") as source:
            ingest_rate = _ingest(source, texts)
            _quiet(source.pid)
            seconds, rss = _timed_cli(
                source_dir, source, "export", "--tenant", source.tenant_id, "--output", str(archive)
            )
            tar_s = _tar_seconds(source_dir / "blobs", copy)
        mb = archive.stat().st_size / 1e6
        print(
            f"export: {len(texts)} documents, {mb:.1f} MB in {seconds:.1f} s, peak RSS {rss:.0f}"
            f" MiB; tar cf of the blobs: {copy.stat().st_size / 1e6:.1f} MB in {tar_s:.2f} s",
            file=sys.stderr,
        )
        metrics += [
            Metric("export documents/s", "docs/s", len(texts) / seconds),
            Metric("export MB/s", "MB/s", mb / seconds, "tar cf of the blob dir", mb / tar_s),
            Metric("export peak RSS", "MiB", rss, higher_is_better=False),
        ]
        with platform(target_dir, ENV, role="admin") as target:
            seconds, rss = _timed_cli(
                target_dir, target, "import", str(archive), "--tenant", target.tenant_id
            )
        print(f"import: {seconds:.1f} s, peak RSS {rss:.0f} MiB", file=sys.stderr)
        metrics += [
            Metric(
                "import documents/s",
                "docs/s",
                len(texts) / seconds,
                f"POST /v1/atoms, {INGESTERS} clients",
                ingest_rate,
            ),
            Metric("import MB/s", "MB/s", mb / seconds),
            Metric("import peak RSS", "MiB", rss, higher_is_better=False),
        ]
    print(f"wrote {write('export', metrics)}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""A 200 MB ingest holds the stream, not the payload: peak RSS grows by less than 64 MB."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PAYLOAD_MB = 200
MAX_GROWTH_MB = 64


def test_a_200_mb_text_is_ingested_in_bounded_memory(pg_url: str, tmp_path: Path) -> None:
    probe = subprocess.run(
        [
            sys.executable,
            "-m",
            "tests.integration.ingest.rss_probe",
            pg_url,
            str(tmp_path / "data"),
            str(PAYLOAD_MB),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=Path(__file__).resolve().parents[3],
    )
    assert probe.returncode == 0, probe.stderr[-4000:]
    result = json.loads(probe.stdout.strip().splitlines()[-1])
    assert result["size_bytes"] > PAYLOAD_MB << 20
    assert result["modality"] == "text" and result["chunk_count"] > 1
    growth = result["peak_rss_after_mib"] - result["peak_rss_before_mib"]
    assert growth < MAX_GROWTH_MB, result

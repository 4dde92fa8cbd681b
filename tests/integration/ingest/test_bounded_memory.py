"""A 200 MB ingest holds the stream, not the payload: peak RSS grows by less than 64 MB."""

from __future__ import annotations

from pathlib import Path

from tests.integration.ingest.rss_probe import probe

PAYLOAD_MB = 200
MAX_GROWTH_MB = 64


def test_a_200_mb_text_is_ingested_in_bounded_memory(pg_url: str, tmp_path: Path) -> None:
    result = probe(pg_url, tmp_path / "data", "text", str(PAYLOAD_MB))
    assert int(result["size_bytes"]) > PAYLOAD_MB << 20
    assert result["modality"] == "text" and result["chunk_count"] > 1
    assert result["rss_growth_mib"] < MAX_GROWTH_MB, result

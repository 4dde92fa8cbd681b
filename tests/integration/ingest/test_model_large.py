"""A 2 GiB model is ingested in bounded memory: a synthetic safetensors file of 64 tensors of
32 MiB, streamed through IngestModel into a real Postgres and blob directory, is stored whole
while the ingesting process's peak RSS grows by less than 128 MiB, and its spool is gone after."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench._model_files import write_safetensors
from tests.integration.ingest.rss_probe import probe

TENSORS = 64
TENSOR_MIB = 32
MAX_GROWTH_MIB = 128


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, removed afterwards: pytest keeps its last runs' tmp dirs, here 4 GiB each."""
    yield tmp_path
    shutil.rmtree(tmp_path)


@pytest.mark.slow
def test_a_2_gib_model_is_ingested_in_bounded_memory(pg_url: str, scratch: Path) -> None:
    model = scratch / "synthetic.safetensors"
    with model.open("wb") as out:
        write_safetensors(out, TENSORS, TENSOR_MIB)
    size = model.stat().st_size
    assert size > 2 << 30
    spools = scratch / "tmp"  # the probe's temp dir: where the ingest spools the upload
    spools.mkdir()

    result = probe(pg_url, scratch / "data", "model", str(model), env={"TMPDIR": str(spools)})

    assert (int(result["size_bytes"]), result["format"]) == (size, "safetensors")
    assert result["tensors"] == result["new_tensors"] == TENSORS
    assert result["rss_growth_mib"] < MAX_GROWTH_MIB, result
    assert list(spools.iterdir()) == []
    assert list((scratch / "data" / "blobs" / "incoming").iterdir()) == []

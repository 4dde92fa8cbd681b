"""Loading, tokenization, padding and versioning of the MiniLM model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hartonomous.modelfiles import MINILM_COMPANIONS, minilm_model_dir
from services.inference.models.minilm import (
    VERSION_FILES,
    MiniLM,
    build_minilm,
    model_version,
)
from services.inference.models.tokenizer import pad_batch

CLS, SEP = 101, 102


def test_empty_text_still_gets_cls_and_sep(model: MiniLM) -> None:
    assert model.tokenize([""]) == [[CLS, SEP]]


def test_long_text_is_truncated_to_max_seq_length(model: MiniLM) -> None:
    [ids] = model.tokenize(["word " * 1000])
    assert model.max_seq_length == 256
    assert len(ids) == 256
    assert (ids[0], ids[-1]) == (CLS, SEP)


def test_texts_are_stripped_and_lowercased(model: MiniLM) -> None:
    assert model.tokenize(["  Hello World \n"]) == model.tokenize(["hello world"])


def test_non_str_input_is_a_type_error(model: MiniLM) -> None:
    with pytest.raises(TypeError):
        model.tokenize(["fine", b"bytes"])  # type: ignore[list-item]
    with pytest.raises(TypeError):
        model.encode([None])  # type: ignore[list-item]


def test_pad_batch_pads_right_and_fills_spare_rows() -> None:
    ids, mask = pad_batch([[CLS, 7, SEP], [CLS, SEP]], seq_len=4, batch_size=3)
    assert ids.dtype == mask.dtype == np.int32
    assert ids.tolist() == [[CLS, 7, SEP, 0], [CLS, SEP, 0, 0], [0, 0, 0, 0]]
    # A spare row keeps one real position so no row is fully masked.
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 0, 0, 0]]


def test_pad_batch_rejects_what_does_not_fit() -> None:
    with pytest.raises(ValueError):
        pad_batch([[1, 2, 3]], seq_len=2, batch_size=1)
    with pytest.raises(ValueError):
        pad_batch([[1], [2]], seq_len=2, batch_size=1)


def test_encode_returns_unit_float32_rows(model: MiniLM) -> None:
    out = model.encode(["a short one", "and a somewhat longer sentence to embed here"])
    assert out.shape == (2, model.dim) == (2, 384)
    assert out.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-6)
    assert model.encode([]).shape == (0, 384)


def test_version_is_the_sha256_of_the_model_files(model: MiniLM) -> None:
    assert len(model.version) == 64
    int(model.version, 16)
    assert model_version(minilm_model_dir()) == model.version


def test_version_changes_when_any_file_changes(tmp_path: Path) -> None:
    for name in VERSION_FILES:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)
    before = model_version(tmp_path)
    (tmp_path / "tokenizer.json").write_text("a different tokenizer")
    assert model_version(tmp_path) != before


def test_only_mean_pooling_is_accepted() -> None:
    folder = minilm_model_dir()
    files = {name: (folder / name).read_bytes() for name in MINILM_COMPANIONS}
    pooling = files["1_Pooling/config.json"]
    files["1_Pooling/config.json"] = pooling.replace(
        b'"pooling_mode_cls_token": false', b'"pooling_mode_cls_token": true'
    )
    with pytest.raises(ValueError, match="mean pooling"):
        build_minilm(files, {}, "any")

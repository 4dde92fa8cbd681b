"""The architecture rules are checked, and the check can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True
    )


def test_the_import_contracts_hold() -> None:
    result = lint_imports(REPO, REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 kept, 0 broken" in result.stdout


def test_a_service_importing_another_breaks_the_contract(tmp_path: Path) -> None:
    # A copy of the tree with one forbidden import added: the same contracts must reject it.
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in ("hartonomous", "services"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("v1"))
    (tmp_path / "services" / "billing" / "sneaky.py").write_text("import services.ingest\n")
    result = lint_imports(tmp_path, tmp_path)
    assert result.returncode != 0
    assert "services.billing.sneaky -> services.ingest" in result.stdout

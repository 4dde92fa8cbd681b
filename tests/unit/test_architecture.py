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
    assert "3 kept, 0 broken" in result.stdout


def copy_of_the_tree(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts, to add one forbidden import to."""
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    for package in ("hartonomous", "services"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("v1"))
    return tmp_path


def test_a_service_importing_another_breaks_the_contract(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    (tree / "services" / "billing" / "sneaky.py").write_text("import services.ingest\n")
    result = lint_imports(tree, tree)
    assert result.returncode != 0
    assert "services.billing.sneaky -> services.ingest" in result.stdout


def test_a_domain_module_doing_io_breaks_the_contract(tmp_path: Path) -> None:
    tree = copy_of_the_tree(tmp_path)
    domain = tree / "services" / "provenance" / "domain.py"
    domain.write_text(domain.read_text() + "\nimport asyncpg  # noqa\n")
    result = lint_imports(tree, tree)
    assert result.returncode != 0
    assert "A service's domain does no I/O BROKEN" in result.stdout
    assert "services.provenance.domain -> asyncpg" in result.stdout

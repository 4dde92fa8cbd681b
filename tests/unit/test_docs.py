"""The worked example in docs/new-service.md uses the kernel as it is: every code block parses,
and every kernel or test-support name it imports exists (the example's own service and stubs
are what the page builds, so they are not looked up)."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parents[2] / "docs" / "new-service.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.DOTALL)
CHECKED = ("hartonomous", "tests.support")
THE_EXAMPLE = ("services.tally", "hartonomous.v1.tally_pb2", "hartonomous.v1.tally_pb2_grpc")


def kernel_imports(source: str) -> list[tuple[str, str]]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = node.module
            for alias in node.names:
                name = f"{module}.{alias.name}"
                if module.startswith(CHECKED) and not name.startswith(THE_EXAMPLE):
                    found.append((module, alias.name))
    return found


def test_the_page_has_its_code() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("block", BLOCKS)
def test_every_kernel_name_the_example_imports_exists(block: str) -> None:
    for module, name in kernel_imports(block):
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def test_the_check_finds_a_name_that_does_not_exist() -> None:
    [(module, name)] = kernel_imports("from hartonomous.runtime.projection import NoSuchThing")
    assert not hasattr(importlib.import_module(module), name)

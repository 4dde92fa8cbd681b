"""Plug-ins found through entry point groups (services, CLI commands), so the kernel never
imports a service: `pyproject.toml` names them, and the composition root loads them by name."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any


def load_entry_points(group: str, kind: type[object]) -> dict[str, Any]:
    """Every object registered under `group`, by entry point name, sorted; each must be a `kind`."""
    found: dict[str, Any] = {}
    for ep in entry_points(group=group):
        loaded = ep.load()
        if not isinstance(loaded, kind):
            raise TypeError(f"entry point {ep.name!r} is not a {kind.__name__}: {loaded!r}")
        found[ep.name] = loaded
    return dict(sorted(found.items()))

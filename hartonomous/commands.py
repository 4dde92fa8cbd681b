"""CLI commands contributed by services (e.g. `hartonomous keys create`, `hartonomous billing
reconcile`), discovered through the `hartonomous.commands` entry point group so the kernel CLI
never imports a service."""

from __future__ import annotations

import abc
import argparse

from hartonomous.entrypoints import load_entry_points
from hartonomous.settings import Settings

ENTRY_POINT_GROUP = "hartonomous.commands"


class Command(abc.ABC):
    """One top-level `hartonomous <name> ...` command (it may have sub-commands of its own)."""

    name: str
    help: str

    @abc.abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    @abc.abstractmethod
    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        """Do the work; return the exit status. Script-readable output goes to stdout
        (a new key or id alone on the last line), chatter to stderr."""


def discover_commands() -> dict[str, Command]:
    found: dict[str, Command] = load_entry_points(ENTRY_POINT_GROUP, Command)
    return found

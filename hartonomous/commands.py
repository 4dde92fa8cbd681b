"""CLI commands contributed by services (e.g. `hartonomous keys create`, `hartonomous billing
reconcile`), discovered through the `hartonomous.commands` entry point group so the kernel CLI
never imports a service."""

from __future__ import annotations

import abc
import argparse
from datetime import UTC, datetime

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


def utc_time(text: str) -> datetime:
    """An argparse type: ISO 8601; a time without an offset is taken as UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO 8601 time (e.g. 2026-11-21T09:30:00Z)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

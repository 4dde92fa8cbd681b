"""`hartonomous export --tenant ID --output FILE` and `hartonomous import ARCHIVE --tenant ID`:
a tenant's archive out of a platform and into one (portability.py), through the services'
gRPC APIs (HARTONOMOUS_INGEST_ADDR and HARTONOMOUS_BILLING_ADDR name them, or this machine's
gRPC port). Progress goes to stderr; the last stdout line is the archive's path (export) or
the count of documents imported (import)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from hartonomous.commands import Command
from hartonomous.settings import Settings
from services.gateway.archive import ArchiveError
from services.gateway.clients import Peers
from services.gateway.errors import PeerError
from services.gateway.portability import export_tenant, import_archive

USAGE_ERROR = 2


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class ExportCommand(Command):
    name = "export"
    help = "write a tenant's archive: documents, usage, invoices, manifest"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--tenant", required=True, help="the tenant id")
        parser.add_argument("--output", type=Path, required=True, help="the archive (.tar)")

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        partial = args.output.with_name(args.output.name + ".partial")
        peers = Peers(settings)
        try:
            with partial.open("wb") as out:
                async for part in export_tenant(peers, args.tenant, _say):
                    out.write(part)
            os.replace(partial, args.output)  # never a half-written archive under its name
        except PeerError as exc:
            partial.unlink(missing_ok=True)
            _say(f"{exc.code.name}: {exc.detail}")
            return 1
        finally:
            await peers.close()
        print(args.output)
        return 0


class ImportCommand(Command):
    name = "import"
    help = "ingest an exported archive's documents for a tenant (checked whole first)"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("archive", type=Path, help="an archive `hartonomous export` wrote")
        parser.add_argument("--tenant", required=True, help="the tenant id to import into")

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        peers = Peers(settings)
        try:
            imported = await import_archive(peers, args.archive, args.tenant, _say)
        except (ArchiveError, FileNotFoundError) as exc:
            _say(f"refused, nothing imported: {exc}")
            return USAGE_ERROR
        except PeerError as exc:
            _say(f"{exc.code.name}: {exc.detail} (importing again resumes: same bytes, same atoms)")
            return 1
        finally:
            await peers.close()
        _say(
            f"{imported.documents} documents ({imported.deduplicated} already stored),"
            f" {imported.bytes / 2**20:.1f} MiB, for tenant {args.tenant}"
        )
        print(imported.documents)
        return 0


export_command = ExportCommand()
import_command = ImportCommand()

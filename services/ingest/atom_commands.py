"""`hartonomous atoms delete ATOM_ID --tenant T [--reason R]`: delete a tenant's document
through the ingest service's gRPC API (HARTONOMOUS_INGEST_ADDR names it, or this machine's
gRPC port), as an operator would for a support request. The actor recorded on the event is
`cli:<user>`."""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

import grpc

from hartonomous.commands import Command
from hartonomous.runtime.peers import peer_channel
from hartonomous.settings import Settings
from hartonomous.v1 import ingest_pb2 as pb
from hartonomous.v1 import ingest_pb2_grpc

TIMEOUT_S = 30.0
USAGE_ERROR = 2
_CALLERS_MISTAKES = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
)


class AtomsCommand(Command):
    name = "atoms"
    help = "a tenant's documents: delete one"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["delete"], help="end the tenant's reference")
        parser.add_argument("atom_id", help="the document's content address (SHA-256 hex)")
        parser.add_argument("--tenant", required=True, help="the tenant id")
        parser.add_argument("--reason", default="", help="why, recorded on the event")

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        request = pb.ReleaseAtomRequest(
            tenant_id=args.tenant,
            atom_id=args.atom_id,
            actor=f"cli:{getpass.getuser()}",
            reason=args.reason,
        )
        async with peer_channel(settings, "ingest") as channel:
            stub: Any = ingest_pb2_grpc.IngestStub(channel)  # type: ignore[no-untyped-call]
            try:
                reply = await stub.ReleaseAtom(request, timeout=TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
                return USAGE_ERROR if exc.code() in _CALLERS_MISTAKES else 1
        print(
            f"deleted {args.atom_id} for tenant {args.tenant}"
            f" ({reply.blobs_removed} blobs removed; request {reply.request_id})",
            file=sys.stderr,
        )
        print(reply.request_id)
        return 0


command = AtomsCommand()

"""`hartonomous inference verify ID`: re-run a past generation from its receipt through the
inference service's gRPC API (HARTONOMOUS_INFERENCE_ADDR names it, or this machine's gRPC
port) and say whether it is identical. The verdict is alone on the last line of stdout; the
exit status is 0 for identical, 1 for different, 3 when it cannot be re-run."""

from __future__ import annotations

import argparse
import sys
from typing import Any

import grpc

from hartonomous.commands import Command
from hartonomous.runtime.peers import peer_channel
from hartonomous.settings import Settings
from hartonomous.v1 import inference_pb2, inference_pb2_grpc

TIMEOUT_S = 600.0
USAGE_ERROR = 2
STATUS = {"identical": 0, "different": 1, "cannot_rerun": 3}


class InferenceCommand(Command):
    name = "inference"
    help = "generations: verify ID re-runs one from its receipt and compares it"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["verify"])
        parser.add_argument("id", metavar="ID", help="the generation's id (its receipt)")

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        async with peer_channel(settings, "inference") as channel:
            stub: Any = inference_pb2_grpc.InferenceStub(channel)  # type: ignore[no-untyped-call]
            request = inference_pb2.VerifyRequest(generation_id=args.id)
            try:
                reply = await stub.Verify(request, timeout=TIMEOUT_S)
            except grpc.aio.AioRpcError as exc:
                print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
                return USAGE_ERROR if exc.code() == grpc.StatusCode.NOT_FOUND else 1
        print(
            f"{reply.generation_id}: {reply.reason} (model {reply.model_version[:16]},"
            f" {reply.recorded_tokens} tokens recorded, {reply.rerun_tokens} re-run)",
            file=sys.stderr,
        )
        if reply.first_difference >= 0:
            print(
                f"first difference at token {reply.first_difference}: recorded"
                f" {reply.recorded_token}, re-run {reply.rerun_token}",
                file=sys.stderr,
            )
        print(reply.verdict)
        return STATUS[reply.verdict]


command = InferenceCommand()

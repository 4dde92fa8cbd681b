"""`hartonomous config get [KEY] | set KEY VALUE --reason R | history KEY`: the platform's
tunables through the control service's gRPC API (so a change is validated and published the
one way, against a running platform of either shape: HARTONOMOUS_CONTROL_ADDR names it, or
this machine's gRPC port).

`set` prints the new value alone on the last line of stdout; `--json` for listings."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from hartonomous.commands import Command
from hartonomous.runtime.peers import peer_channel
from hartonomous.settings import Settings
from hartonomous.v1 import control_pb2 as pb
from hartonomous.v1 import control_pb2_grpc

TIMEOUT_S = 15.0
USAGE_ERROR = 2


class ConfigCommand(Command):
    name = "config"
    help = "the platform's tunables: effective values, changes (with a reason), history"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("action", choices=["get", "set", "history"])
        parser.add_argument("key", nargs="?", metavar="KEY", help="a tunable (get: all if none)")
        parser.add_argument("value", nargs="?", metavar="VALUE", help="for set")
        parser.add_argument("--reason", default="", help="for set: why (kept with the change)")
        parser.add_argument("--limit", type=int, default=0, help="for history (default 100)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        if args.action != "get" and not args.key:
            print(f"usage: hartonomous config {args.action} KEY ...", file=sys.stderr)
            return USAGE_ERROR
        if args.action == "set" and (args.value is None or not args.reason.strip()):
            print('usage: hartonomous config set KEY VALUE --reason "why"', file=sys.stderr)
            return USAGE_ERROR
        async with peer_channel(settings, "control") as channel:
            stub: Any = control_pb2_grpc.ControlStub(channel)  # type: ignore[no-untyped-call]
            try:
                return await _run(stub, args)
            except grpc.aio.AioRpcError as exc:
                print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
                return USAGE_ERROR if exc.code() in _CALLERS_MISTAKES else 1


_CALLERS_MISTAKES = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)


async def _run(stub: Any, args: argparse.Namespace) -> int:
    if args.action == "get":
        reply = await stub.GetConfig(pb.GetConfigRequest(key=args.key or ""), timeout=TIMEOUT_S)
        if args.json:
            print(json.dumps([_plain(s) for s in reply.settings]))
        for s in [] if args.json else reply.settings:
            changed = f"  {s.source} {s.actor}: {s.reason}" if s.actor else "  default"
            print(f"{s.tunable.key:<40} {s.value:>10}{changed}")
        return 0
    if args.action == "set":
        actor = f"user:cli-{getpass.getuser()}"
        request = pb.SetConfigRequest(
            key=args.key, value=args.value, reason=args.reason, actor=actor
        )
        changed = await stub.SetConfig(request, timeout=TIMEOUT_S)
        print(f"{changed.tunable.key} set by {changed.actor}:", file=sys.stderr)
        print(changed.value)
        return 0
    asked = pb.ConfigHistoryRequest(key=args.key, limit=args.limit)
    history = await stub.ConfigHistory(asked, timeout=TIMEOUT_S)
    if args.json:
        print(json.dumps([_plain(c) for c in history.changes]))
        return 0
    for c in history.changes:
        was = c.old_value if c.HasField("old_value") else "(unset)"
        print(f"{c.changed_at.ToJsonString()}  {was} -> {c.new_value}  {c.actor}: {c.reason}")
    return 0


def _plain(message: Any) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True)


command = ConfigCommand()

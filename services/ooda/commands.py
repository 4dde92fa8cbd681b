"""`hartonomous ooda status | cycles | explain CYCLE | decisions | approve ID | reject ID |
mode [MODE]`: the autonomous loop through the decide stage's gRPC API (HARTONOMOUS_OODA_ADDR
names it, or this machine's gRPC port). The mode is the tunable `ooda.mode`, read and changed
through the control service, as `hartonomous config` would.

`approve`, `reject` and `mode` print the new status or mode alone on the last line of stdout;
`--json` for listings."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from collections.abc import Callable
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from hartonomous.commands import Command
from hartonomous.runtime.peers import peer_channel
from hartonomous.settings import Settings
from hartonomous.v1 import control_pb2, control_pb2_grpc, ooda_pb2_grpc
from hartonomous.v1 import ooda_pb2 as pb

TIMEOUT_S = 15.0
USAGE_ERROR = 2
_CALLERS_MISTAKES = (
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.FAILED_PRECONDITION,
)
_NEEDS_ID = ("explain", "approve", "reject")
MODE = "ooda.mode"
RECENT = 10


class OodaCommand(Command):
    name = "ooda"
    help = "the autonomous loop: its cycles and why, its decisions, approve or reject them"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        actions = ["status", "cycles", "explain", "decisions", "approve", "reject", "mode"]
        parser.add_argument("action", choices=actions)
        parser.add_argument(
            "id", nargs="?", metavar="ID", help="a cycle (explain), a decision, or a mode"
        )
        parser.add_argument("--reason", default="", help="for approve, reject and mode")
        parser.add_argument("--status", default="", help="decisions: only in this status")
        parser.add_argument("--acted", action="store_true", help="cycles: only with a decision")
        parser.add_argument("--limit", type=int, default=0, help="for listings (default 50)")
        parser.add_argument("--json", action="store_true", help="print JSON")

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        if args.action in _NEEDS_ID and not args.id:
            print(f"usage: hartonomous ooda {args.action} ID", file=sys.stderr)
            return USAGE_ERROR
        if args.action == "mode" and args.id and not args.reason.strip():
            print('usage: hartonomous ooda mode off|advise|auto --reason "why"', file=sys.stderr)
            return USAGE_ERROR
        async with (
            peer_channel(settings, "ooda") as ooda_channel,
            peer_channel(settings, "control") as control_channel,
        ):
            # The generated stubs have no type stubs.
            stub: Any = ooda_pb2_grpc.OodaStub(ooda_channel)  # type: ignore[no-untyped-call]
            control: Any = control_pb2_grpc.ControlStub(control_channel)  # type: ignore[no-untyped-call]
            try:
                if args.action == "mode":
                    return await _mode(control, args)
                if args.action == "status":
                    return await _status(stub, control)
                return await _run(stub, args)
            except grpc.aio.AioRpcError as exc:
                print(f"{exc.code().name}: {exc.details()}", file=sys.stderr)
                return USAGE_ERROR if exc.code() in _CALLERS_MISTAKES else 1


async def _mode(control: Any, args: argparse.Namespace) -> int:
    if not args.id:
        asked = control_pb2.GetConfigRequest(key=MODE)
        print((await control.GetConfig(asked, timeout=TIMEOUT_S)).settings[0].value)
        return 0
    actor = f"user:cli-{getpass.getuser()}"
    request = control_pb2.SetConfigRequest(key=MODE, value=args.id, reason=args.reason, actor=actor)
    changed = await control.SetConfig(request, timeout=TIMEOUT_S)
    print(f"{MODE} set by {changed.actor}:", file=sys.stderr)
    print(changed.value)
    return 0


async def _status(stub: Any, control: Any) -> int:
    [mode] = (
        await control.GetConfig(control_pb2.GetConfigRequest(key=MODE), timeout=TIMEOUT_S)
    ).settings
    pending = await stub.ListDecisions(pb.ListDecisionsRequest(status="pending"), timeout=TIMEOUT_S)
    cycles = await stub.ListCycles(pb.ListCyclesRequest(limit=RECENT), timeout=TIMEOUT_S)
    set_by = f" (set by {mode.actor}: {mode.reason})" if mode.actor else " (default)"
    print(f"mode: {mode.value}{set_by}")
    print(f"pending decisions: {len(pending.decisions)}")
    for d in pending.decisions:
        print(f"  {d.decision_id}  {d.knob} {d.from_value} -> {d.to_value}  ({d.playbook})")
        print(f"    {d.evidence}; {d.reason}")
    print(f"recent cycles: {len(cycles.cycles)}")
    for c in cycles.cycles:
        print(f"  {c.cycle_id}  [{c.status}] {c.metric} {c.direction}")
    return 0


async def _run(stub: Any, args: argparse.Namespace) -> int:
    if args.action == "cycles":
        asked = pb.ListCyclesRequest(limit=args.limit, acted_only=args.acted)
        cycles = (await stub.ListCycles(asked, timeout=TIMEOUT_S)).cycles
        _print(args, cycles, lambda c: f"{c.cycle_id}  {c.status:<12} {c.metric}  {c.knob}")
        return 0
    if args.action == "explain":
        cycle = await stub.GetCycle(pb.GetCycleRequest(cycle_id=args.id), timeout=TIMEOUT_S)
        print(f"[{cycle.status}] {cycle.explanation}")
        return 0
    if args.action == "decisions":
        wanted = pb.ListDecisionsRequest(status=args.status, limit=args.limit)
        decisions = (await stub.ListDecisions(wanted, timeout=TIMEOUT_S)).decisions
        _print(
            args,
            decisions,
            lambda d: (
                f"{d.decision_id}  {d.status:<9} {d.knob} {d.from_value} -> {d.to_value}"
                f"  ({d.playbook}, {d.risk} risk)"
            ),
        )
        return 0
    actor = f"user:cli-{getpass.getuser()}"
    request = pb.ResolveRequest(decision_id=args.id, actor=actor, reason=args.reason)
    resolve = stub.Approve if args.action == "approve" else stub.Reject
    resolved = await resolve(request, timeout=TIMEOUT_S)
    print(f"{resolved.decision_id} on {resolved.knob} by {actor}:", file=sys.stderr)
    print(resolved.status)
    return 0


def _print(args: argparse.Namespace, messages: Any, line: Callable[[Any], str]) -> None:
    if args.json:
        print(json.dumps([MessageToDict(m, preserving_proto_field_name=True) for m in messages]))
        return
    for message in messages:
        print(line(message))


command = OodaCommand()

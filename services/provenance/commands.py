"""`hartonomous audit verify [--topics T ...]` and `hartonomous audit as-of TIME [--json]`.

verify: the live side is the running provenance service (its Fingerprint RPC) when one answers
at the configured gRPC address, since an embedded graph is a file only its own process may
open; with no service running, the CLI opens the configured graph itself. Exit status 0 when the
live graph equals the replay, 1 when it does not, 3 when a graph cannot be opened."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Collection, Mapping, Sequence
from datetime import datetime

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hartonomous.commands import Command, utc_time
from hartonomous.eventlog import open_event_log
from hartonomous.eventlog.port import EventLog
from hartonomous.eventlog.topics import DOMAIN_TOPICS
from hartonomous.events import AvroCodec
from hartonomous.postgres import postgres_url
from hartonomous.runtime.peers import peer_address
from hartonomous.settings import Settings
from hartonomous.v1 import provenance_pb2, provenance_pb2_grpc
from services.provenance import audit
from services.provenance.api import fingerprint_from
from services.provenance.canonical import Fingerprint
from services.provenance.graph import GraphStoreError, open_graph_store
from services.provenance.service import GRPC_SERVICE

HEALTH_TIMEOUT_S = 2.0
FINGERPRINT_TIMEOUT_S = 900.0


def _say(text: str) -> None:
    print(text, file=sys.stderr)


async def _serving(address: str) -> bool:
    async with grpc.aio.insecure_channel(address) as channel:
        try:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=GRPC_SERVICE), timeout=HEALTH_TIMEOUT_S
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


async def live_fingerprint(
    settings: Settings, topics: Collection[str] | None
) -> tuple[Fingerprint, str]:
    """The live graph's fingerprint and where it came from."""
    address = peer_address(settings, "provenance")
    if await _serving(address):
        async with grpc.aio.insecure_channel(address) as channel:
            # The generated gRPC module has no type stubs.
            stub = provenance_pb2_grpc.ProvenanceStub(channel)  # type: ignore[no-untyped-call]
            reply = await stub.Fingerprint(
                provenance_pb2.FingerprintRequest(topics=list(topics or [])),
                timeout=FINGERPRINT_TIMEOUT_S,
            )
        return fingerprint_from(reply), f"the provenance service at {address}"
    store = open_graph_store(settings)
    await store.open()
    try:
        return await store.fingerprint(topics), "the graph store (no provenance service answered)"
    finally:
        await store.close()


def _table(heading: Sequence[str], rows: Mapping[str, Sequence[int]]) -> list[str]:
    width = max([len(heading[0]), *map(len, rows)])
    lines = [f"{heading[0]:<{width}}" + "".join(f" {h:>10}" for h in heading[1:])]
    for name, values in sorted(rows.items()):
        mark = "  <-- differs" if len(set(values)) > 1 else ""
        lines.append(f"{name:<{width}}" + "".join(f" {v:>10}" for v in values) + mark)
    return lines


def _side_by_side(left: Mapping[str, int], right: Mapping[str, int]) -> dict[str, tuple[int, int]]:
    return {k: (left.get(k, 0), right.get(k, 0)) for k in set(left) | set(right)}


class AuditCommand(Command):
    name = "audit"
    help = "prove the provenance graph equals a replay of the log, or show it as of a past time"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "action",
            choices=["verify", "as-of"],
            help="verify: compare the live graph with a replay; as-of: the graph at TIME",
        )
        parser.add_argument(
            "time", nargs="?", type=utc_time, help="as-of: ISO 8601 time (UTC unless given)"
        )
        parser.add_argument(
            "--topics",
            nargs="+",
            choices=DOMAIN_TOPICS,
            metavar="TOPIC",
            help="verify: only what these topics' events define (default: the whole graph)",
        )
        parser.add_argument("--json", action="store_true", help="as-of: the whole graph as JSON")

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        if (args.action == "as-of") != (args.time is not None):
            _say("audit: TIME is required by as-of, and only by it")
            return 2
        pg_url = await asyncio.to_thread(postgres_url, settings)
        event_log = open_event_log(settings, pg_url, client_id="hartonomous-audit")
        await event_log.start()
        try:
            if args.action == "verify":
                return await self._verify(event_log, settings, args.topics)
            return await self._as_of(event_log, args.time, args.json)
        except GraphStoreError as exc:
            _say(f"audit: {exc}")
            return 3
        finally:
            await event_log.close()

    async def _verify(
        self, event_log: EventLog, settings: Settings, topics: list[str] | None
    ) -> int:
        chosen = audit.audited_topics(topics)
        live, where = await live_fingerprint(settings, chosen)
        _say(f"audit: live graph from {where}; replaying the log into a scratch graph")
        report = await audit.verify(event_log, AvroCodec(), live, chosen)
        scope = "the whole graph" if chosen is None else f"what {', '.join(chosen)} define"
        lines = [f"audit verify: {scope}, {report.replayed.records} records replayed"]
        if report.replayed.rejected:
            lines.append(f"{report.replayed.rejected} records were dead-lettered, as live")
        if report.replayed.ahead:
            lines.append(
                f"{report.replayed.ahead} records appended since are not in the live graph yet"
                " (not compared)"
            )
        rebuilt = report.rebuilt
        lines += _table(("node label", "live", "replay"), _side_by_side(live.nodes, rebuilt.nodes))
        lines += _table(("edge type", "live", "replay"), _side_by_side(live.edges, rebuilt.edges))
        print("\n".join(lines))
        if report.ok:
            print(f"OK {live.digest}")
            return 0
        for difference in report.differences:
            print(f"  {difference}")
        print(f"MISMATCH live {live.digest} replay {report.rebuilt.digest}")
        return 1

    async def _as_of(self, event_log: EventLog, before: datetime, as_json: bool) -> int:
        snapshot = await audit.as_of(event_log, AvroCodec(), before, dump=as_json)
        if snapshot.graph is not None:
            print(json.dumps(snapshot.graph, sort_keys=True))
            return 0
        fp = snapshot.fingerprint
        print(f"audit as-of {before.isoformat()}: {snapshot.replayed.records} records")
        lines = _table(("node label", "count"), {k: (v,) for k, v in fp.nodes.items()})
        lines += _table(("edge type", "count"), {k: (v,) for k, v in fp.edges.items()})
        print("\n".join(lines))
        print(fp.digest)
        return 0


command = AuditCommand()

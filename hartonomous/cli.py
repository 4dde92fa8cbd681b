"""`hartonomous`: run the platform or one service, and inspect the log.

Output a script may want is printed on stdout (alone on the last line, or as JSON with
--json); logs and human chatter go to stderr."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from hartonomous.commands import Command, discover_commands, utc_time
from hartonomous.eventlog import open_event_log
from hartonomous.eventlog.port import EventLog, EventLogError, StoredRecord
from hartonomous.eventlog.topics import provision_topics
from hartonomous.events import AvroCodec, EventDecodeError, decode_event
from hartonomous.events.payloads import to_avro
from hartonomous.postgres import create_pool, postgres_url
from hartonomous.runtime import host
from hartonomous.sealing import ERASED, SealedValueError, Sealer, is_sealed, sealer_on
from hartonomous.settings import Settings, add_arguments
from hartonomous.telemetry import configure_logging


def _parser(commands: dict[str, Command]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hartonomous", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="run every service in one process (embedded defaults)")
    add_arguments(up)

    serve = sub.add_parser("serve", help="run one service alone (one Kubernetes Deployment)")
    serve.add_argument("service")
    add_arguments(serve)

    topics = sub.add_parser("topics", help="topics, partitions and end offsets")
    topics.add_argument("--json", action="store_true")
    topics.add_argument(
        "--create",
        action="store_true",
        help="first create the platform's missing topics (what each process does at start"
        " unless HARTONOMOUS_TOPIC_PROVISIONING=require): the provisioning step of a locked-down Kafka",
    )
    add_arguments(topics)

    replay = sub.add_parser("replay", help="print a topic's decoded events, for audit")
    replay.add_argument("--topic", required=True)
    start = replay.add_mutually_exclusive_group()
    start.add_argument("--from-offset", type=int, default=None)
    start.add_argument("--from-time", type=utc_time, default=None)
    replay.add_argument("--to-time", type=utc_time, default=None)
    replay.add_argument("--json", action="store_true", help="one JSON object per line")
    replay.add_argument(
        "--sealed",
        action="store_true",
        help="print the tenants' sealed fields as stored (default: opened with the tenant's"
        f" data key, {ERASED} once the tenant is erased)",
    )
    add_arguments(replay)

    for name, command in sorted(commands.items()):
        contributed = sub.add_parser(name, help=command.help)
        command.add_arguments(contributed)
        add_arguments(contributed)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    commands = discover_commands()
    args = _parser(commands).parse_args(argv)
    settings = Settings.from_env().with_args(args)
    configure_logging(settings.log_level)
    if args.command in commands:
        return asyncio.run(commands[args.command].run(args, settings))
    if args.command in ("up", "serve"):
        services = host.select(None if args.command == "up" else [args.service])
        try:
            asyncio.run(host.run(settings, services))
        except EventLogError as exc:  # the log unreachable, or its topics not provisioned
            print(f"hartonomous: error: {exc}", file=sys.stderr)
            return 1
    elif args.command == "topics":
        asyncio.run(_with_log(settings, lambda log, _: _topics(log, args.json, args.create)))
    elif args.command == "replay":
        asyncio.run(_with_log(settings, lambda event_log, pg_url: _replay(event_log, pg_url, args)))
    return 0


async def _with_log(settings: Settings, action: Callable[[EventLog, str], Awaitable[None]]) -> None:
    pg_url = await asyncio.to_thread(postgres_url, settings)
    event_log = open_event_log(settings, pg_url, client_id="hartonomous-cli")
    await event_log.start()
    try:
        await action(event_log, pg_url)
    finally:
        await event_log.close()


async def _topics(event_log: EventLog, as_json: bool, create: bool) -> None:
    if create:
        await provision_topics(event_log, "create")
    listing = {name: await event_log.end_offsets(name) for name in sorted(await event_log.topics())}
    if as_json:
        rows = [
            {
                "topic": name,
                "partitions": len(ends),
                "records": sum(ends.values()),
                "end_offsets": ends,
            }
            for name, ends in listing.items()
        ]
        print(json.dumps(rows))
        return
    print(f"{'topic':<24} {'partitions':>10} {'records':>10}  end offsets")
    for name, ends in listing.items():
        offsets = " ".join(f"{p}:{o}" for p, o in sorted(ends.items()))
        print(f"{name:<24} {len(ends):>10} {sum(ends.values()):>10}  {offsets}")


async def _describe(
    codec: AvroCodec, record: StoredRecord, sealer: Sealer | None
) -> dict[str, object]:
    entry: dict[str, object] = {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp": record.timestamp.isoformat(),
        "key": record.key.decode("utf-8", "replace"),
        "headers": dict(record.headers),
    }
    try:
        event = decode_event(codec, record)
        entry["event_type"] = event.event_type
        payload = to_avro(event.payload)
        if sealer is not None:
            tenant = str(payload.get("tenant_id", event.envelope.tenant_id))
            payload = await _opened(sealer, tenant, payload)
        entry["payload"] = payload
    except (EventDecodeError, SealedValueError) as exc:
        entry["error"] = str(exc)
    return entry


async def _opened(sealer: Sealer, tenant: str, value: Any) -> Any:
    """Every sealed string in a decoded payload, opened for its tenant."""
    if isinstance(value, str) and is_sealed(value):
        opened = await sealer.open(tenant, value)
        return ERASED if opened is None else opened
    if isinstance(value, dict):
        return {k: await _opened(sealer, tenant, v) for k, v in value.items()}
    if isinstance(value, list):
        return [await _opened(sealer, tenant, v) for v in value]
    return value


async def _replay(event_log: EventLog, pg_url: str, args: argparse.Namespace) -> None:
    async with contextlib.AsyncExitStack() as stack:
        sealer = None
        if not args.sealed:
            pool = await create_pool(pg_url, max_size=1)
            stack.push_async_callback(pool.close)
            sealer = await sealer_on(pool)
        await _print_replay(event_log, sealer, args)


async def _print_replay(
    event_log: EventLog, sealer: Sealer | None, args: argparse.Namespace
) -> None:
    codec = AvroCodec()
    count = 0
    async for record in event_log.replay(
        args.topic, from_offset=args.from_offset, from_time=args.from_time, to_time=args.to_time
    ):
        entry = await _describe(codec, record, sealer)
        count += 1
        if args.json:
            print(json.dumps(entry, default=str))
        else:
            kind = entry.get("event_type", "UNDECODABLE")
            print(
                f"{entry['timestamp']}  {record.topic}[{record.partition}]@{record.offset}  {kind}"
                f"  {json.dumps(entry.get('payload', entry.get('error')), default=str)}"
            )
    print(f"{count} events", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

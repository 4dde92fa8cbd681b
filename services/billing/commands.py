"""`hartonomous billing ...`: rates, quotas, usage, invoices and reconcile, straight against
Postgres and the log (the platform may be running on the same data dir, or not).

Output a script may want is on stdout (an id or version alone on the last line, or JSON with
--json, in the shape of the gRPC messages); chatter goes to stderr."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from hartonomous.commands import Command
from hartonomous.eventlog import open_event_log
from hartonomous.eventlog.port import EventLog
from hartonomous.events import AvroCodec
from hartonomous.postgres import create_pool, postgres_url
from hartonomous.settings import Settings
from hartonomous.tenants import parse_tenant_id
from services.billing import handlers, messages
from services.billing.domain import (
    BillingError,
    InvalidArgument,
    Invoice,
    Period,
    UsageSummary,
    decimal_text,
)
from services.billing.pricing import RateCard, parse_rate_table
from services.billing.quota import utc_now
from services.billing.reconcile import Report, reconcile
from services.billing.store import BillingStore

Action = Callable[[argparse.Namespace, BillingStore, Settings], Awaitable[int]]
_SETTINGS = [f.name for f in dataclasses.fields(Settings)]


class BillingCommand(Command):
    name = "billing"
    help = "the usage ledger: rates, quotas, usage, invoices, reconcile"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="billing", required=True)
        _rates_arguments(sub.add_parser("rates", help="rate cards"))
        _quota_arguments(sub.add_parser("quota", help="quotas"))
        usage = _leaf(sub, "usage", "a tenant's usage and cost", _usage)
        usage.add_argument("--tenant", required=True)
        usage.add_argument("--from", dest="start", type=_utc_time)
        usage.add_argument("--to", dest="end", type=_utc_time)
        usage.add_argument("--group-by", choices=["operation", "day"], default="operation")
        usage.add_argument("--json", action="store_true")
        invoice = sub.add_parser("invoice", help="invoices")
        issue = _leaf(
            invoice.add_subparsers(dest="invoice", required=True),
            "issue",
            "invoice a closed period (again: the same invoice)",
            _invoice_issue,
        )
        issue.add_argument("--tenant", required=True)
        issue.add_argument("--from", dest="start", type=_utc_time, required=True)
        issue.add_argument("--to", dest="end", type=_utc_time, required=True)
        listing = _leaf(sub, "invoices", "a tenant's invoices", _invoices)
        listing.add_argument("--tenant", required=True)
        listing.add_argument("--json", action="store_true")
        _leaf(sub, "reconcile", "replay `usage` and compare with the live ledger", _reconcile)

    async def run(self, args: argparse.Namespace, settings: Settings) -> int:
        action: Action = args.action
        url = await asyncio.to_thread(postgres_url, settings)
        pool = await create_pool(url, max_size=2)
        try:
            store = BillingStore(pool)
            await store.setup()
            return await action(args, store, settings)
        except BillingError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2 if isinstance(exc, InvalidArgument) else 1
        finally:
            await pool.close()


command = BillingCommand()


def _leaf(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], name: str, help: str, action: Action
) -> argparse.ArgumentParser:
    """A sub-command that also takes the settings flags (--data-dir ...) after its own. They
    default to absent, so that flags given before the sub-command still count."""
    parser = sub.add_parser(name, help=help)
    parser.set_defaults(action=action)
    for setting in _SETTINGS:
        parser.add_argument(
            "--" + setting.replace("_", "-"),
            dest=setting,
            default=argparse.SUPPRESS,
            help=argparse.SUPPRESS,
        )
    return parser


def _rates_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="rates", required=True)
    put = _leaf(sub, "set", "a new rate card version: the current one with this rate", _rates_set)
    put.add_argument("--operation", required=True)
    put.add_argument("--unit", required=True)
    put.add_argument("--price", required=True, help="decimal price per unit")
    put.add_argument("--effective-from", type=_utc_time, help="ISO time (default: now)")
    put.add_argument("--currency", help="ISO 4217 code (default: the current card's, or USD)")
    put.add_argument(
        "--multiplier",
        action="append",
        default=[],
        metavar="DIMENSION=VALUE=FACTOR",
        help="add or replace a multiplier, e.g. plan=pro=0.8 (repeatable)",
    )
    show = _leaf(sub, "show", "the rate card in effect", _rates_show)
    show.add_argument("--at", type=_utc_time, help="ISO time (default: now)")
    show.add_argument("--json", action="store_true")


def _quota_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="quota", required=True)
    put = _leaf(sub, "set", "a tenant's quota on an operation (* = its spend)", _quota_set)
    put.add_argument("--tenant", required=True)
    put.add_argument("--operation", required=True)
    put.add_argument("--limit", required=True)
    put.add_argument("--unit", required=True, help="the operation's unit, or the currency")
    put.add_argument("--period", choices=[p.value for p in Period], default="month")
    put.add_argument("--soft", default="", help="soft limit ratio (default 0.8)")
    put.add_argument("--plan", default="", help="the tenant's plan, for plan multipliers")


def _utc_time(text: str) -> datetime:
    """ISO 8601; a time without an offset is UTC."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _json(message: Message) -> str:
    return json.dumps(MessageToDict(message, preserving_proto_field_name=True), indent=2)


# ---------------------------------------------------------------------------------------
# Rates


async def _rates_set(args: argparse.Namespace, store: BillingStore, _: Settings) -> int:
    current = max((await store.pricing()).cards, key=lambda c: c.version, default=None)
    asked = parse_rate_table(
        args.effective_from or utc_now(),
        args.currency or (current.currency if current else ""),
        [(args.operation, args.unit, args.price)],
        [_multiplier(text) for text in args.multiplier],
    )
    table = asked
    if current is not None:
        revised = current.revise(asked.effective_from, asked.rates, asked.multipliers)
        table = dataclasses.replace(revised, currency=asked.currency)
    card = await store.put_rates(table)
    _print_card(card)
    print(card.version)
    return 0


def _multiplier(text: str) -> tuple[str, str, str]:
    parts = text.split("=")
    if len(parts) != 3:
        raise InvalidArgument(f"--multiplier takes DIMENSION=VALUE=FACTOR, got {text!r}")
    return parts[0], parts[1], parts[2]


async def _rates_show(args: argparse.Namespace, store: BillingStore, _: Settings) -> int:
    card = await handlers.rates_at(store, args.at or utc_now())
    if args.json:
        print(_json(messages.rate_card(card)))
    else:
        _print_card(card)
    return 0


def _print_card(card: RateCard) -> None:
    print(
        f"version {card.version}, effective from {card.effective_from.isoformat()}, {card.currency}"
    )
    for rate in sorted(card.rates, key=lambda r: (r.operation, r.unit)):
        print(f"  {rate.operation:<20} {rate.unit:<12} {decimal_text(rate.unit_price):>20}")
    for m in card.multipliers:
        print(f"  x {decimal_text(m.factor)} where {m.dimension} = {m.value}")


# ---------------------------------------------------------------------------------------
# Quotas and usage


async def _quota_set(args: argparse.Namespace, store: BillingStore, _: Settings) -> int:
    rule, plan = await handlers.put_quota(
        store,
        tenant_id=args.tenant,
        operation=args.operation,
        limit=args.limit,
        unit=args.unit,
        period=Period(args.period),
        soft_ratio=args.soft,
        plan=args.plan,
    )
    print(
        f"{rule.tenant_id}: {rule.operation} at most {decimal_text(rule.limit)} {rule.unit}"
        f" per {rule.period.value} (soft limit at {decimal_text(rule.soft_ratio)})"
        + (f", plan {plan}" if plan else "")
    )
    return 0


async def _usage(args: argparse.Namespace, store: BillingStore, _: Settings) -> int:
    summary = await handlers.usage_summary(
        store, args.tenant, args.start, args.end or utc_now(), args.group_by == "day"
    )
    print(_json(messages.usage_reply(summary)) if args.json else _usage_table(summary))
    return 0


def _usage_table(summary: UsageSummary) -> str:
    rows = [
        f"{'day':<10} {'operation':<16} {'unit':<10} {'quantity':>20} {'cost':>16} {'events':>8}"
    ]
    for line in summary.lines:
        day = line.day.isoformat() if line.day else ""
        rows.append(
            f"{day:<10} {line.operation:<16} {line.unit:<10} {decimal_text(line.quantity):>20}"
            f" {decimal_text(line.cost):>16} {line.events:>8}"
        )
    rows.append(f"total {decimal_text(summary.total_cost)} {summary.currency}")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------
# Invoices


async def _invoice_issue(args: argparse.Namespace, store: BillingStore, _: Settings) -> int:
    issued = await handlers.issue_invoice(store, args.tenant, args.start, args.end, utc_now())
    print(_invoice_text(issued))
    print(issued.invoice_id)
    return 0


async def _invoices(args: argparse.Namespace, store: BillingStore, _: Settings) -> int:
    found = await store.invoices(parse_tenant_id(args.tenant))
    if args.json:
        print(
            json.dumps(
                [
                    MessageToDict(messages.invoice(i), preserving_proto_field_name=True)
                    for i in found
                ],
                indent=2,
            )
        )
    else:
        print("\n\n".join(_invoice_text(i) for i in found) or "no invoices")
    return 0


def _invoice_text(invoice: Invoice) -> str:
    rows = [
        f"invoice {invoice.invoice_id} for {invoice.tenant_id},"
        f" {invoice.period_start.isoformat()} to {invoice.period_end.isoformat()}"
        f" (issued {invoice.issued_at.isoformat()})"
    ]
    for line in invoice.lines:
        rows.append(
            f"  {line.operation:<16} {decimal_text(line.quantity):>20} {line.unit:<10}"
            f" x {decimal_text(line.unit_price):<14} = {line.amount:>12f}"
        )
    rows.append(f"  total {invoice.total:f} {invoice.currency}")
    return "\n".join(rows)


# ---------------------------------------------------------------------------------------
# Reconcile


async def _reconcile(_: argparse.Namespace, store: BillingStore, settings: Settings) -> int:
    url = await asyncio.to_thread(postgres_url, settings)
    async with _opened_log(settings, url) as event_log:
        report = await reconcile(store, event_log, AvroCodec())
    print(_report_text(report))
    return 1 if report.differences else 0


@asynccontextmanager
async def _opened_log(settings: Settings, url: str) -> AsyncIterator[EventLog]:
    event_log = open_event_log(settings, url, client_id="hartonomous-billing-reconcile")
    await event_log.start()
    try:
        yield event_log
    finally:
        await event_log.close()


def _report_text(report: Report) -> str:
    rows = []
    if report.differences:
        rows.append(f"{'tenant':<24} {'period':<10} {'live':>22} {'replayed':>22} {'diff':>22}")
    for d in report.differences:
        rows.append(
            f"{d.tenant_id:<24} {d.day.isoformat():<10} {decimal_text(d.live_amount):>22}"
            f" {decimal_text(d.replayed_amount):>22} {decimal_text(d.amount_diff):>22}"
        )
        if d.live is not None and d.replayed is not None and d.amount_diff == 0:
            rows.append(
                f"{'':<35} events {d.live.events} vs {d.replayed.events},"
                f" quantity {decimal_text(d.live.quantity)} vs {decimal_text(d.replayed.quantity)}"
            )
    verdict = (
        f"{len(report.differences)} of {report.compared} tenant-days differ"
        if report.differences
        else f"ledger matches the log: {report.compared} tenant-days"
    )
    rows.append(
        f"{verdict} ({report.replayed_events} usage records replayed,"
        f" {report.undecodable} undecodable, {report.pending} not yet applied by the live ledger)"
    )
    return "\n".join(rows)

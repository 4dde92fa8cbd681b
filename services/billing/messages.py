"""Domain values <-> hartonomous.v1 billing messages, shared by the gRPC API and the CLI's
--json output (one shape for both). Decimals become strings, never floats."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from hartonomous.v1 import billing_pb2 as pb
from services.billing.domain import Invoice, Period, QuotaRule, UsageSummary, decimal_text
from services.billing.pricing import RateCard
from services.billing.quota import QuotaAnswer

PERIODS = {pb.QUOTA_PERIOD_DAY: Period.DAY, pb.QUOTA_PERIOD_MONTH: Period.MONTH}
_PERIOD_VALUES = {period: value for value, period in PERIODS.items()}


def to_time(message: Any, field: str) -> datetime:
    value: Timestamp = getattr(message, field)
    return value.ToDatetime(tzinfo=UTC)


def stamp(at: datetime) -> Timestamp:
    value = Timestamp()
    value.FromDatetime(at)
    return value


def decision(answer: QuotaAnswer) -> pb.QuotaDecision:
    reply = pb.QuotaDecision(
        allowed=answer.allowed,
        soft_limit_reached=answer.soft_limit_reached,
        retry_after_seconds=answer.retry_after_seconds,
    )
    if answer.rule is not None and answer.period_end is not None:
        reply.limit = decimal_text(answer.rule.limit)
        reply.used = decimal_text(answer.used)
        reply.unit = answer.rule.unit
        reply.period_end.CopyFrom(stamp(answer.period_end))
    return reply


def standing(answer: QuotaAnswer) -> pb.QuotaStanding:
    assert answer.rule is not None and answer.period_end is not None  # a quota's standing
    return pb.QuotaStanding(
        quota=quota(answer.rule, None),
        used=decimal_text(answer.used),
        period_end=stamp(answer.period_end),
        soft_limit_reached=answer.soft_limit_reached,
    )


def invoice(issued: Invoice) -> pb.Invoice:
    return pb.Invoice(
        invoice_id=issued.invoice_id,
        tenant_id=issued.tenant_id,
        period_start=stamp(issued.period_start),
        period_end=stamp(issued.period_end),
        issued_at=stamp(issued.issued_at),
        currency=issued.currency,
        lines=[
            pb.InvoiceLine(
                operation=line.operation,
                unit=line.unit,
                quantity=decimal_text(line.quantity),
                unit_price=decimal_text(line.unit_price),
                amount=format(line.amount, "f"),  # to the cent, as invoiced: "12.30"
            )
            for line in issued.lines
        ],
        total=format(issued.total, "f"),
    )


def rate_card(card: RateCard) -> pb.RateCard:
    return pb.RateCard(
        version=card.version,
        effective_from=stamp(card.effective_from),
        currency=card.currency,
        rates=[
            pb.Rate(operation=r.operation, unit=r.unit, unit_price=decimal_text(r.unit_price))
            for r in card.rates
        ],
        multipliers=[
            pb.Multiplier(dimension=m.dimension, value=m.value, factor=decimal_text(m.factor))
            for m in card.multipliers
        ],
    )


def quota(rule: QuotaRule, plan: str | None) -> pb.Quota:
    return pb.Quota(
        tenant_id=rule.tenant_id,
        operation=rule.operation,
        limit=decimal_text(rule.limit),
        unit=rule.unit,
        period=_PERIOD_VALUES[rule.period],
        soft_limit_ratio=decimal_text(rule.soft_ratio),
        plan=plan or "",
    )


def usage_reply(summary: UsageSummary) -> pb.UsageReply:
    return pb.UsageReply(
        tenant_id=summary.tenant_id,
        currency=summary.currency,
        lines=[
            pb.UsageLine(
                operation=line.operation,
                unit=line.unit,
                day=line.day.isoformat() if line.day else "",
                quantity=decimal_text(line.quantity),
                cost=decimal_text(line.cost),
                events=line.events,
            )
            for line in summary.lines
        ],
        total_cost=decimal_text(summary.total_cost),
    )

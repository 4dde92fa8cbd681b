"""The billing rules, free of I/O: exact decimals, names, quota periods and limits, usage
summaries and invoices (pricing is in `pricing`).

Money and quantities are `Decimal` everywhere and arithmetic runs in `EXACT`, a context that
traps any rounding, so charges and sums are exact. Only an invoice rounds, once per line, to
the cent (half up); its total is the sum of its lines.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import (
    ROUND_HALF_UP,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from enum import StrEnum
from functools import reduce

from hartonomous.tenants import parse_tenant_id

USAGE_TOPIC = "usage"
MONEY = "*"
"""The operation of a money quota: the tenant's spend across all operations, in the currency."""
DEFAULT_CURRENCY = "USD"
DEFAULT_SOFT_RATIO = Decimal("0.8")

EXACT = Context(prec=200, traps=[Inexact, InvalidOperation, Overflow, DivisionByZero])
_ROUNDING = Context(prec=200, rounding=ROUND_HALF_UP, traps=[InvalidOperation, Overflow])
CENT = Decimal("0.01")
ZERO = Decimal(0)
ONE = Decimal(1)

MAX_SCALE = 18
MAX_DECIMAL_CHARS = 64  # far inside EXACT's precision: checking the range never rounds
MAX_INTEGER_DIGITS = 20
MAX_NAME_CHARS = 128
_DECIMAL = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")
_CURRENCY = re.compile(r"[A-Z]{3}")


class BillingError(ValueError):
    """What the caller is told, by type (the API maps each to a status)."""


class InvalidArgument(BillingError):
    pass


class NotFound(BillingError):
    pass


class FailedPrecondition(BillingError):
    pass


# ---------------------------------------------------------------------------------------
# Values


def parse_decimal(text: str, field: str) -> Decimal:
    """A decimal string ("12.5", "1e-7"); never a float. At most 18 fractional and 20 integer
    digits, which every NUMERIC column and every sum in the ledger holds exactly."""
    raw = text.strip()
    if len(raw) > MAX_DECIMAL_CHARS or not _DECIMAL.fullmatch(raw):
        raise InvalidArgument(f"{field} must be a decimal string, got {text[:80]!r}")
    value = Decimal(raw)
    normal = value.normalize(EXACT)
    if -int(normal.as_tuple().exponent) > MAX_SCALE or normal.adjusted() >= MAX_INTEGER_DIGITS:
        raise InvalidArgument(
            f"{field} {text!r} is out of range (at most {MAX_INTEGER_DIGITS} integer and"
            f" {MAX_SCALE} fractional digits)"
        )
    return value


def non_negative(value: Decimal, field: str) -> Decimal:
    if value < 0:
        raise InvalidArgument(f"{field} must not be negative, got {decimal_text(value)}")
    return value


def decimal_text(value: Decimal) -> str:
    """Plain notation without trailing zeros: "0.0000001", never "1E-7"."""
    return format(value.normalize(EXACT), "f")


def exact_sum(values: Iterable[Decimal]) -> Decimal:
    return reduce(EXACT.add, values, ZERO)


def to_cents(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, context=_ROUNDING)


def parse_name(text: str, field: str) -> str:
    """A tenant id, operation, unit, dimension...: required, short, printable."""
    name = text.strip()
    if not name:
        raise InvalidArgument(f"{field} is required")
    if len(name) > MAX_NAME_CHARS or not name.isprintable():
        raise InvalidArgument(f"{field} must be at most {MAX_NAME_CHARS} printable characters")
    return name


def parse_currency(text: str) -> str:
    currency = text.strip().upper() or DEFAULT_CURRENCY
    if not _CURRENCY.fullmatch(currency):
        raise InvalidArgument(f"currency must be an ISO 4217 code such as USD, got {text!r}")
    return currency


def utc(at: datetime) -> datetime:
    if at.utcoffset() is None:
        raise InvalidArgument(f"{at!r} has no time zone")
    return at.astimezone(UTC)


# ---------------------------------------------------------------------------------------
# Periods


class Period(StrEnum):
    DAY = "day"
    MONTH = "month"


def period_bounds(at: datetime, period: Period) -> tuple[datetime, datetime]:
    """[start, end) of the UTC day or calendar month holding `at`."""
    at = at.astimezone(UTC)
    if period is Period.DAY:
        start = datetime(at.year, at.month, at.day, tzinfo=UTC)
        return start, start + timedelta(days=1)
    start = datetime(at.year, at.month, 1, tzinfo=UTC)
    return start, datetime(at.year + at.month // 12, at.month % 12 + 1, 1, tzinfo=UTC)


def seconds_until(end: datetime, now: datetime) -> int:
    """Whole seconds to wait from `now` until `end` has passed (at least 1)."""
    return max(1, math.ceil((end - now).total_seconds()))


# ---------------------------------------------------------------------------------------
# Quotas


@dataclass(frozen=True)
class QuotaRule:
    """A tenant's limit per period on one operation (in its unit), or on its spend
    (operation MONEY, unit = the currency)."""

    tenant_id: str
    operation: str
    limit: Decimal
    unit: str
    period: Period
    soft_ratio: Decimal

    @property
    def is_money(self) -> bool:
        return self.operation == MONEY


def parse_quota(
    *,
    tenant_id: str,
    operation: str,
    limit: str,
    unit: str,
    period: Period,
    soft_ratio: str,
    currency: str,
) -> QuotaRule:
    """`soft_ratio` empty: DEFAULT_SOFT_RATIO. A money quota's unit must be the currency."""
    rule = QuotaRule(
        tenant_id=parse_tenant_id(tenant_id),
        operation=parse_name(operation, "operation"),
        limit=non_negative(parse_decimal(limit, "limit"), "limit"),
        unit=parse_name(unit, "unit"),
        period=period,
        soft_ratio=parse_decimal(soft_ratio, "soft_limit_ratio")
        if soft_ratio.strip()
        else DEFAULT_SOFT_RATIO,
    )
    if not ZERO < rule.soft_ratio <= ONE:
        raise InvalidArgument("soft_limit_ratio must be in (0, 1]")
    if rule.is_money and rule.unit != currency:
        raise InvalidArgument(f"a money quota ({MONEY}) is in the currency, {currency}")
    return rule


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    soft_limit_reached: bool
    used: Decimal  # counting this request when it is allowed


def evaluate(limit: Decimal, used: Decimal, quantity: Decimal, soft_ratio: Decimal) -> Verdict:
    """A request for `quantity` fits when used + quantity stays within the limit; a request
    that only asks (quantity 0) is allowed while some room is left."""
    after = EXACT.add(used, quantity)
    allowed = after <= limit if quantity > 0 else used < limit
    counted = after if allowed else used
    return Verdict(allowed, counted >= EXACT.multiply(limit, soft_ratio), counted)


# ---------------------------------------------------------------------------------------
# Summaries and invoices


@dataclass(frozen=True)
class UsageLine:
    operation: str
    unit: str
    day: date | None
    quantity: Decimal
    cost: Decimal
    events: int


@dataclass(frozen=True)
class UsageSummary:
    tenant_id: str
    currency: str
    lines: tuple[UsageLine, ...]

    @property
    def total_cost(self) -> Decimal:
        return exact_sum(line.cost for line in self.lines)


@dataclass(frozen=True)
class DayTotal:
    """A tenant's ledger for one UTC day: what reconcile compares."""

    tenant_id: str
    day: date
    events: int
    quantity: Decimal
    amount: Decimal


@dataclass(frozen=True)
class InvoiceLine:
    operation: str
    unit: str
    quantity: Decimal
    unit_price: Decimal
    amount: Decimal


@dataclass(frozen=True)
class Invoice:
    invoice_id: str
    tenant_id: str
    period_start: datetime
    period_end: datetime
    issued_at: datetime
    currency: str
    lines: tuple[InvoiceLine, ...]
    total: Decimal


def check_closed_period(start: datetime, end: datetime, now: datetime) -> None:
    if start >= end:
        raise InvalidArgument("period_start must be before period_end")
    if end > now:
        raise FailedPrecondition(f"the period is still open (it ends {end.isoformat()})")


def check_no_overlap(start: datetime, end: datetime, issued: Iterable[Invoice]) -> None:
    """Usage is invoiced once: periods of one tenant's invoices never overlap."""
    for invoice in issued:
        if invoice.period_start < end and start < invoice.period_end:
            raise FailedPrecondition(
                f"the period overlaps invoice {invoice.invoice_id}"
                f" ({invoice.period_start.isoformat()} to {invoice.period_end.isoformat()})"
            )


def build_invoice(
    invoice_id: str,
    tenant_id: str,
    period: tuple[datetime, datetime],
    issued_at: datetime,
    currency: str,
    priced: Iterable[InvoiceLine],
) -> Invoice:
    """`priced`: the ledger's exact totals, one per operation, unit and unit price. Each line is
    rounded to the cent; the total is the sum of the rounded lines."""
    lines = tuple(replace(line, amount=to_cents(line.amount)) for line in priced)
    total = exact_sum(line.amount for line in lines)
    return Invoice(invoice_id, tenant_id, *period, issued_at, currency, lines, to_cents(total))

"""Pricing, free of I/O: effective-dated rate cards, multipliers and the price of one usage
event (a ledger row), exact to the last digit.

Which rate card prices an event: the version effective at the event's `used_at`, among the
versions that existed when the log accepted the event (`logged_at`, the record's timestamp).
The live ledger and a replay both know that timestamp, so they always choose the same card,
and a card put later (even back-dated) never reprices an event the log already held.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal
from functools import reduce

from hartonomous.events.payloads import UsageRecorded
from services.billing.domain import (
    DEFAULT_CURRENCY,
    EXACT,
    ONE,
    ZERO,
    FailedPrecondition,
    InvalidArgument,
    non_negative,
    parse_currency,
    parse_decimal,
    parse_name,
    utc,
)

# ---------------------------------------------------------------------------------------
# Usage


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage(UsageRecorded):
    """One UsageRecorded event as the ledger keys it: by its envelope's event id."""

    event_id: str


def usage_from_event(event_id: str, usage: UsageRecorded) -> Usage:
    values = {field.name: getattr(usage, field.name) for field in fields(usage)}
    values["used_at"] = usage.used_at.astimezone(UTC)
    return Usage(event_id=event_id, **values)


# ---------------------------------------------------------------------------------------
# Rate cards


@dataclass(frozen=True)
class Rate:
    operation: str
    unit: str
    unit_price: Decimal


@dataclass(frozen=True)
class Multiplier:
    """`dimension` is "plan" (the tenant's plan), "model" (the usage's resource id) or a key of
    the usage's dimensions; those two names are reserved for the first two meanings."""

    dimension: str
    value: str
    factor: Decimal

    def matches(self, usage: Usage, plan: str | None) -> bool:
        if self.dimension == "plan":
            return plan == self.value
        if self.dimension == "model":
            return usage.resource_id == self.value
        return usage.dimensions.get(self.dimension) == self.value


@dataclass(frozen=True)
class RateTable:
    """What an admin puts: the whole price list from a date on (a new version replaces the
    previous one entirely; an operation left out is no longer priced)."""

    effective_from: datetime
    currency: str
    rates: tuple[Rate, ...]
    multipliers: tuple[Multiplier, ...]

    def rate(self, operation: str, unit: str) -> Rate | None:
        return next((r for r in self.rates if (r.operation, r.unit) == (operation, unit)), None)

    def revise(
        self,
        effective_from: datetime,
        rates: Iterable[Rate] = (),
        multipliers: Iterable[Multiplier] = (),
    ) -> RateTable:
        """A table for a new version: this one with these rates and multipliers added or
        replaced (by operation and unit, by dimension and value)."""
        by_key = {(r.operation, r.unit): r for r in (*self.rates, *rates)}
        by_match = {(m.dimension, m.value): m for m in (*self.multipliers, *multipliers)}
        return RateTable(
            effective_from, self.currency, tuple(by_key.values()), tuple(by_match.values())
        )


@dataclass(frozen=True)
class RateCard(RateTable):
    """A stored version of a rate table: immutable once created."""

    version: int
    created_at: datetime


def parse_rate_table(
    effective_from: datetime,
    currency: str,
    rates: Iterable[tuple[str, str, str]],
    multipliers: Iterable[tuple[str, str, str]],
) -> RateTable:
    """Validate (operation, unit, unit price) and (dimension, value, factor) strings."""
    parsed_rates = tuple(
        Rate(
            parse_name(operation, "rate operation"),
            parse_name(unit, "rate unit"),
            non_negative(parse_decimal(price, "unit_price"), "unit_price"),
        )
        for operation, unit, price in rates
    )
    parsed_multipliers = tuple(
        Multiplier(
            parse_name(dimension, "multiplier dimension"),
            parse_name(value, "multiplier value"),
            non_negative(parse_decimal(factor, "factor"), "factor"),
        )
        for dimension, value, factor in multipliers
    )
    _unique([(r.operation, r.unit) for r in parsed_rates], "rate for")
    _unique([(m.dimension, m.value) for m in parsed_multipliers], "multiplier for")
    return RateTable(
        utc(effective_from), parse_currency(currency), parsed_rates, parsed_multipliers
    )


def _unique(keys: list[tuple[str, str]], what: str) -> None:
    seen: set[tuple[str, str]] = set()
    for key in keys:
        if key in seen:
            raise InvalidArgument(f"more than one {what} {key[0]}/{key[1]}")
        seen.add(key)


def check_new_version(
    table: RateTable, latest: RateCard | None, invoiced_until: datetime | None
) -> None:
    """A new version keeps the currency (amounts of one ledger never mix currencies) and may
    be back-dated, but not into a period some invoice already covers."""
    if latest is not None and table.currency != latest.currency:
        raise FailedPrecondition(
            f"rates are in {latest.currency}; a card in {table.currency} would mix currencies"
        )
    if invoiced_until is not None and table.effective_from < invoiced_until:
        raise FailedPrecondition(
            f"effective_from {table.effective_from.isoformat()} is inside an invoiced period"
            f" (invoices cover usage until {invoiced_until.isoformat()})"
        )


@dataclass(frozen=True)
class PlanChange:
    tenant_id: str
    plan: str
    set_at: datetime


@dataclass(frozen=True)
class Pricing:
    """Every rate card version and every plan change: all `price` needs."""

    cards: tuple[RateCard, ...]
    plans: Mapping[str, tuple[PlanChange, ...]]  # by tenant, oldest first

    def card(self, used_at: datetime, known_at: datetime) -> RateCard | None:
        """The version in effect at `used_at` among those created by `known_at`; of versions
        effective from the same instant, the newest."""
        candidates = [
            c for c in self.cards if c.effective_from <= used_at and c.created_at <= known_at
        ]
        return max(candidates, key=lambda c: (c.effective_from, c.version), default=None)

    def plan(self, tenant_id: str, at: datetime) -> str | None:
        changes = [c for c in self.plans.get(tenant_id, ()) if c.set_at <= at]
        return changes[-1].plan if changes else None

    @property
    def currency(self) -> str:
        latest = max(self.cards, key=lambda c: c.version, default=None)
        return DEFAULT_CURRENCY if latest is None else latest.currency


@dataclass(frozen=True)
class Charge:
    """A priced usage event: one ledger row. `rated` is False when no rate covered the
    operation and unit (priced at 0, still recorded: usage is never lost)."""

    usage: Usage
    logged_at: datetime
    rate_version: int | None
    plan: str | None
    unit_price: Decimal
    multiplier: Decimal
    amount: Decimal
    rated: bool


def price(usage: Usage, pricing: Pricing, logged_at: datetime) -> Charge:
    """`logged_at`: when the log accepted the event (its record's timestamp)."""
    card = pricing.card(usage.used_at, logged_at)
    plan = pricing.plan(usage.tenant_id, min(usage.used_at, logged_at))
    rate = None if card is None else card.rate(usage.operation, usage.unit)
    version = None if card is None else card.version
    if card is None or rate is None:
        return Charge(usage, logged_at, version, plan, ZERO, ONE, ZERO, rated=False)
    factors = [m.factor for m in card.multipliers if m.matches(usage, plan)]
    multiplier = reduce(EXACT.multiply, factors, ONE)
    amount = EXACT.multiply(EXACT.multiply(usage.quantity, rate.unit_price), multiplier)
    return Charge(usage, logged_at, version, plan, rate.unit_price, multiplier, amount, rated=True)

"""Pricing: exact decimals, rate card choice by effective date and log time, multipliers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.billing.domain import (
    FailedPrecondition,
    InvalidArgument,
    decimal_text,
    exact_sum,
    parse_decimal,
)
from services.billing.pricing import (
    Multiplier,
    PlanChange,
    Pricing,
    Rate,
    RateCard,
    Usage,
    check_new_version,
    parse_rate_table,
    price,
)

JAN = datetime(2026, 1, 1, tzinfo=UTC)
LATER = datetime(2030, 1, 1, tzinfo=UTC)


def usage(
    quantity: str = "1",
    used_at: datetime = JAN + timedelta(days=10),
    operation: str = "embed",
    resource_id: str = "minilm@1",
    **dimensions: str,
) -> Usage:
    return Usage(
        event_id="e1",
        tenant_id="acme",
        operation=operation,
        unit="tokens",
        quantity=Decimal(quantity),
        resource_id=resource_id,
        used_at=used_at,
        api_key_id=None,
        dimensions=dimensions,
    )


def card(
    version: int,
    effective_from: datetime,
    unit_price: str,
    *multipliers: Multiplier,
    created_at: datetime = JAN,
) -> RateCard:
    rates = (Rate("embed", "tokens", Decimal(unit_price)),)
    return RateCard(effective_from, "USD", rates, multipliers, version, created_at)


def test_a_charge_is_exact_and_ten_thousand_of_them_sum_exactly() -> None:
    pricing = Pricing((card(1, JAN, "0.0000001"),), {})
    charges = [price(usage("1"), pricing, LATER) for _ in range(10_000)]
    assert charges[0].amount == Decimal("0.0000001")
    assert exact_sum(c.amount for c in charges) == Decimal("0.001")
    # The float way is off; the ledger never goes near it.
    assert sum(0.0000001 for _ in range(10_000)) != 0.001


def test_amounts_beyond_28_digits_are_not_rounded() -> None:
    pricing = Pricing((card(1, JAN, "0.000000000000000001"),), {})
    charge = price(usage("99999999999999999999.999999999"), pricing, LATER)
    assert charge.amount == Decimal("99.999999999999999999999999999")  # 29 digits


def test_the_card_in_effect_at_used_at_prices_the_event() -> None:
    cards = (card(1, JAN, "1"), card(2, JAN + timedelta(days=15), "2"))
    pricing = Pricing(cards, {})
    before = price(usage("3", used_at=JAN + timedelta(days=14)), pricing, LATER)
    after = price(usage("3", used_at=JAN + timedelta(days=15)), pricing, LATER)
    assert (before.rate_version, before.amount) == (1, Decimal(3))
    assert (after.rate_version, after.amount) == (2, Decimal(6))


def test_a_card_created_after_the_event_was_logged_never_prices_it() -> None:
    logged = JAN + timedelta(days=20)
    backdated = card(2, JAN, "5", created_at=logged + timedelta(seconds=1))
    pricing = Pricing((card(1, JAN, "1"), backdated), {})
    assert price(usage(), pricing, logged).rate_version == 1
    assert price(usage(), pricing, logged + timedelta(seconds=1)).rate_version == 2


def test_no_rate_prices_at_zero_and_keeps_the_usage() -> None:
    pricing = Pricing((card(1, JAN, "1"),), {})
    charge = price(usage("7", operation="generate"), pricing, LATER)
    assert (charge.rated, charge.amount, charge.rate_version) == (False, 0, 1)
    assert charge.usage.quantity == 7
    nothing = price(usage("7"), Pricing((), {}), LATER)
    assert (nothing.rated, nothing.amount, nothing.rate_version) == (False, 0, None)


def test_multipliers_by_plan_model_and_dimension_multiply() -> None:
    factors = (
        Multiplier("plan", "pro", Decimal("0.8")),
        Multiplier("model", "big@2", Decimal("3")),
        Multiplier("device", "gpu", Decimal("1.5")),
        Multiplier("device", "cpu", Decimal("0.5")),
    )
    plans = {"acme": (PlanChange("acme", "pro", JAN),)}
    pricing = Pricing((card(1, JAN, "0.01", *factors),), plans)
    charge = price(usage("100", resource_id="big@2", device="gpu"), pricing, LATER)
    assert charge.multiplier == Decimal("3.6")
    assert charge.amount == Decimal("3.6")
    assert charge.plan == "pro"
    plain = price(usage("100"), Pricing((card(1, JAN, "0.01", *factors),), {}), LATER)
    assert (plain.multiplier, plain.amount, plain.plan) == (1, Decimal(1), None)


def test_the_plan_at_the_time_of_use_applies() -> None:
    plans = {
        "acme": (
            PlanChange("acme", "free", JAN),
            PlanChange("acme", "pro", JAN + timedelta(days=5)),
        )
    }
    pricing = Pricing((card(1, JAN, "1", Multiplier("plan", "pro", Decimal("0.5"))),), plans)
    assert price(usage("2", used_at=JAN + timedelta(days=1)), pricing, LATER).amount == 2
    assert price(usage("2", used_at=JAN + timedelta(days=6)), pricing, LATER).amount == 1


@pytest.mark.parametrize(
    "text", ["", "abc", "1.2.3", "NaN", "Infinity", "1_000", "0x10", "1e30", "1e-19"]
)
def test_bad_decimal_strings_are_refused(text: str) -> None:
    with pytest.raises(InvalidArgument):
        parse_decimal(text, "price")


def test_decimal_text_is_plain_notation() -> None:
    assert decimal_text(parse_decimal("1e-7", "p")) == "0.0000001"
    assert decimal_text(Decimal("12.500000000")) == "12.5"
    assert decimal_text(Decimal("1E+2")) == "100"
    assert decimal_text(Decimal("0E-9")) == "0"


def test_a_rate_table_is_validated() -> None:
    table = parse_rate_table(JAN, "usd", [("embed", "tokens", "0.1")], [("plan", "pro", "0.9")])
    assert table.currency == "USD" and table.rate("embed", "tokens") is not None
    with pytest.raises(InvalidArgument, match="more than one"):
        parse_rate_table(JAN, "USD", [("embed", "tokens", "1"), ("embed", "tokens", "2")], [])
    with pytest.raises(InvalidArgument, match="negative"):
        parse_rate_table(JAN, "USD", [("embed", "tokens", "-1")], [])
    with pytest.raises(InvalidArgument, match="currency"):
        parse_rate_table(JAN, "dollars", [], [])


def test_a_new_version_keeps_the_currency_and_stays_out_of_invoiced_periods() -> None:
    latest = card(1, JAN, "1")
    table = parse_rate_table(JAN + timedelta(days=3), "USD", [("embed", "tokens", "2")], [])
    check_new_version(table, latest, invoiced_until=JAN + timedelta(days=3))
    with pytest.raises(FailedPrecondition, match="invoiced period"):
        check_new_version(table, latest, invoiced_until=JAN + timedelta(days=4))
    euros = parse_rate_table(LATER, "EUR", [], [])
    with pytest.raises(FailedPrecondition, match="mix currencies"):
        check_new_version(euros, latest, invoiced_until=None)


def test_revise_adds_or_replaces_one_rate_and_keeps_the_rest() -> None:
    current = card(1, JAN, "1", Multiplier("plan", "pro", Decimal("0.5")))
    revised = current.revise(
        LATER, [Rate("embed", "tokens", Decimal(2)), Rate("search", "requests", Decimal(3))]
    )
    assert revised.effective_from == LATER
    assert {(r.operation, r.unit_price) for r in revised.rates} == {("embed", 2), ("search", 3)}
    assert revised.multipliers == current.multipliers

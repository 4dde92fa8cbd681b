"""Periods, quota arithmetic and invoice building."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from services.billing.domain import (
    FailedPrecondition,
    InvalidArgument,
    Invoice,
    InvoiceLine,
    Period,
    build_invoice,
    check_closed_period,
    check_no_overlap,
    evaluate,
    parse_quota,
    period_bounds,
    seconds_until,
)

D = Decimal


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def test_periods_are_utc_days_and_calendar_months() -> None:
    assert period_bounds(at(2026, 2, 28, 23, 59), Period.DAY) == (at(2026, 2, 28), at(2026, 3, 1))
    assert period_bounds(at(2026, 12, 31, 12), Period.MONTH) == (at(2026, 12, 1), at(2027, 1, 1))
    assert period_bounds(at(2026, 1, 1), Period.MONTH) == (at(2026, 1, 1), at(2026, 2, 1))
    assert seconds_until(at(2026, 1, 2), at(2026, 1, 1, 23, 59, 59, 500_000)) == 1


def test_a_request_fits_until_the_limit_and_a_question_while_room_is_left() -> None:
    assert evaluate(D(20), D(19), D(1), D("0.8")).allowed
    assert not evaluate(D(20), D(20), D(1), D("0.8")).allowed
    assert not evaluate(D(20), D(15), D(6), D("0.8")).allowed
    assert evaluate(D(20), D(19), D(0), D("0.8")).allowed
    assert not evaluate(D(20), D(20), D(0), D("0.8")).allowed
    soft = evaluate(D(10), D(7), D(1), D("0.8"))
    assert (soft.allowed, soft.soft_limit_reached, soft.used) == (True, True, D(8))
    assert not evaluate(D(10), D(6), D(1), D("0.8")).soft_limit_reached


def test_a_quota_is_validated() -> None:
    rule = parse_quota(
        tenant_id="acme", operation="embed", limit="1000", unit="tokens",
        period=Period.DAY, soft_ratio="", currency="USD",
    )  # fmt: skip
    assert (rule.limit, rule.soft_ratio, rule.is_money) == (1000, D("0.8"), False)
    with pytest.raises(InvalidArgument, match="soft_limit_ratio"):
        parse_quota(
            tenant_id="acme", operation="embed", limit="1", unit="tokens",
            period=Period.DAY, soft_ratio="1.5", currency="USD",
        )  # fmt: skip
    with pytest.raises(InvalidArgument, match="currency"):
        parse_quota(
            tenant_id="acme", operation="*", limit="100", unit="tokens",
            period=Period.MONTH, soft_ratio="", currency="USD",
        )  # fmt: skip


def test_an_invoice_rounds_each_line_to_the_cent_and_totals_the_lines() -> None:
    lines = [
        InvoiceLine("embed", "tokens", D(10_000), D("0.0000001"), D("0.001")),
        InvoiceLine("embed", "tokens", D(5), D("0.125"), D("0.625")),
        InvoiceLine("search", "requests", D(3), D("0.005"), D("0.015")),
    ]
    invoice = build_invoice(
        "i1", "acme", (at(2026, 1, 1), at(2026, 2, 1)), at(2026, 2, 2), "USD", lines
    )
    assert [line.amount for line in invoice.lines] == [D("0.00"), D("0.63"), D("0.02")]
    assert str(invoice.total) == "0.65"


def test_only_closed_periods_are_invoiced_and_never_twice() -> None:
    check_closed_period(at(2026, 1, 1), at(2026, 2, 1), now=at(2026, 2, 1))
    with pytest.raises(FailedPrecondition, match="open"):
        check_closed_period(at(2026, 1, 1), at(2026, 2, 1), now=at(2026, 1, 31))
    with pytest.raises(InvalidArgument):
        check_closed_period(at(2026, 2, 1), at(2026, 1, 1), now=at(2026, 3, 1))
    january = Invoice("i1", "acme", at(2026, 1, 1), at(2026, 2, 1), at(2026, 2, 1), "USD", (), D(0))
    check_no_overlap(at(2026, 2, 1), at(2026, 3, 1), [january])
    with pytest.raises(FailedPrecondition, match="overlaps invoice i1"):
        check_no_overlap(at(2026, 1, 15), at(2026, 2, 15), [january])

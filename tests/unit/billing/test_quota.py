"""The in-memory quota book: reservations, expiry, periods, spend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from services.billing.domain import Period, QuotaRule
from services.billing.quota import QuotaBook

D = Decimal
NOW = datetime(2026, 3, 31, 23, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = NOW
        self.tick = 0.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.tick


def book(*rules: QuotaRule, ttl: float = 60.0) -> tuple[QuotaBook, Clock]:
    clock = Clock()
    quotas = QuotaBook(clock, clock.monotonic, reservation_ttl=ttl)
    quotas.set_rules(rules)
    return quotas, clock


def tokens(limit: int, period: Period = Period.MONTH) -> QuotaRule:
    return QuotaRule("acme", "embed", D(limit), "tokens", period, D("0.8"))


def test_no_quota_allows_everything() -> None:
    quotas, _ = book()
    answer = quotas.check("acme", "embed", D(10**9))
    assert answer.allowed and answer.rule is None


def test_reservations_stop_a_burst_at_the_limit() -> None:
    quotas, clock = book(tokens(20))
    allowed = [quotas.check("acme", "embed", D(1)).allowed for _ in range(50)]
    assert allowed.count(True) == 20 and allowed[:20] == [True] * 20
    denied = quotas.check("acme", "embed", D(1))
    assert denied.used == 20
    assert denied.retry_after_seconds == 3600  # until April starts
    assert denied.period_end == datetime(2026, 4, 1, tzinfo=UTC)
    # The ledger catches up: usage replaces the reservations, the total stays 20.
    for _ in range(20):
        quotas.record("acme", "embed", "tokens", D(1), D("0.1"), clock.now)
    assert quotas.check("acme", "embed", D(0)).used == 20


def test_a_reservation_without_usage_expires() -> None:
    quotas, clock = book(tokens(10), ttl=30)
    assert quotas.check("acme", "embed", D(10)).allowed
    assert not quotas.check("acme", "embed", D(1)).allowed
    clock.tick += 30
    assert quotas.check("acme", "embed", D(1)).allowed


def test_usage_releases_reservations_by_quantity_oldest_first() -> None:
    quotas, clock = book(tokens(100))
    quotas.check("acme", "embed", D(30))
    quotas.check("acme", "embed", D(30))
    quotas.record("acme", "embed", "tokens", D(40), D(0), clock.now)
    # used 40 + 20 still held of the second reservation
    assert quotas.check("acme", "embed", D(0)).used == 60


def test_a_new_period_starts_from_zero() -> None:
    quotas, clock = book(tokens(5, Period.DAY))
    quotas.record("acme", "embed", "tokens", D(5), D(0), clock.now)
    assert not quotas.check("acme", "embed", D(1)).allowed
    clock.now += timedelta(hours=1)  # April 1st
    assert quotas.check("acme", "embed", D(1)).allowed
    # Late usage of the day before no longer counts.
    quotas.record("acme", "embed", "tokens", D(5), D(0), NOW)
    assert quotas.check("acme", "embed", D(0)).used == 1


def test_usage_of_other_units_tenants_and_operations_does_not_count() -> None:
    quotas, clock = book(tokens(5))
    quotas.record("acme", "embed", "requests", D(9), D(0), clock.now)
    quotas.record("globex", "embed", "tokens", D(9), D(0), clock.now)
    quotas.record("acme", "search", "tokens", D(9), D(0), clock.now)
    assert quotas.check("acme", "embed", D(5)).allowed


def test_spend_denies_every_operation_once_the_money_is_used() -> None:
    money = QuotaRule("acme", "*", D("1.00"), "USD", Period.MONTH, D("0.5"))
    quotas, clock = book(money, tokens(1000))
    quotas.record("acme", "embed", "tokens", D(10), D("0.60"), clock.now)
    soft = quotas.check("acme", "search", D(1))
    assert soft.allowed and soft.soft_limit_reached and soft.rule == money
    quotas.record("acme", "search", "requests", D(1), D("0.40"), clock.now)
    denied = quotas.check("acme", "embed", D(1))
    assert not denied.allowed and denied.rule == money and denied.used == D("1.00")
    # The denied request reserved nothing on the token quota.
    assert quotas.check("acme", "*", D(0)).used == 1


def test_standing_shows_each_quota_of_the_tenant_and_reserves_nothing() -> None:
    spend = QuotaRule("acme", "*", D(5), "USD", Period.DAY, D("0.8"))
    other = QuotaRule("globex", "embed", D(1), "tokens", Period.MONTH, D("0.8"))
    quotas, clock = book(tokens(20), spend, other)
    quotas.record("acme", "embed", "tokens", D(17), D("4.5"), clock.now)
    assert quotas.check("acme", "embed", D(1)).allowed  # one more token, reserved
    standing = {a.rule.operation: a for a in quotas.standing("acme") if a.rule}
    assert set(standing) == {"*", "embed"}
    assert (standing["embed"].used, standing["embed"].soft_limit_reached) == (18, True)
    assert standing["embed"].period_end == datetime(2026, 4, 1, tzinfo=UTC)
    assert standing["*"].used == D("4.5") and standing["*"].soft_limit_reached
    assert quotas.standing("acme")[1].used == 18  # asking twice reserved nothing
    assert quotas.standing("nobody") == []

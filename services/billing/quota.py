"""The quota book: CheckQuota is answered from memory, never from the database.

Counters hold each tenant's usage per operation and unit (and its spend) for the current UTC
day and month. They are loaded from the ledger at start and kept current by the ledger
consumer as it applies events. Between a check and its usage event reaching the ledger, the
checked quantity is held as a reservation, so a burst of concurrent requests cannot overshoot
a limit while their events are in flight. A usage event releases reservations of its key by
its quantity, oldest first; a reservation whose request never reported usage (it failed)
expires after `reservation_ttl` seconds. A new period starts every counter from zero.

Checks are plain synchronous code on the event loop, so check-and-reserve is atomic among
concurrent requests. The counters are exact for the replica that consumes the tenant's usage
partition: run billing as one replica, or route a tenant's checks to one replica.

Spend (money quotas) is checked for headroom only: the price of a request is unknown until it
has run (tokens, multipliers), so concurrent requests may overshoot a money limit by what they
cost; once the ledger counts the spend, every request is denied.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from services.billing.domain import (
    EXACT,
    MONEY,
    ZERO,
    Period,
    QuotaRule,
    evaluate,
    period_bounds,
    seconds_until,
)

RESERVATION_TTL = 60.0

Clock = Callable[[], datetime]
_Key = tuple[str, str, str, Period]  # tenant, operation (or MONEY), unit ("" for money), period


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _Counter:
    start: datetime
    used: Decimal = ZERO
    reserved: Decimal = ZERO
    holds: deque[tuple[float, Decimal]] = field(
        default_factory=deque
    )  # (expiry, qty), oldest first

    @property
    def total(self) -> Decimal:
        return EXACT.add(self.used, self.reserved)

    def hold(self, quantity: Decimal, expires: float) -> None:
        self.holds.append((expires, quantity))
        self.reserved = EXACT.add(self.reserved, quantity)

    def expire(self, now: float) -> None:
        while self.holds and self.holds[0][0] <= now:
            self.reserved = EXACT.subtract(self.reserved, self.holds.popleft()[1])

    def release(self, quantity: Decimal) -> None:
        while quantity > 0 and self.holds:
            expires, held = self.holds.popleft()
            taken = min(held, quantity)
            quantity = EXACT.subtract(quantity, taken)
            self.reserved = EXACT.subtract(self.reserved, taken)
            if taken < held:
                self.holds.appendleft((expires, EXACT.subtract(held, taken)))


@dataclass(frozen=True)
class QuotaAnswer:
    allowed: bool
    soft_limit_reached: bool
    rule: QuotaRule | None  # the quota the answer is about; None: no quota applies
    used: Decimal
    period_end: datetime | None
    retry_after_seconds: int  # 0 when allowed


_UNLIMITED = QuotaAnswer(True, False, None, ZERO, None, 0)


class QuotaBook:
    def __init__(
        self,
        clock: Clock = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        reservation_ttl: float = RESERVATION_TTL,
    ) -> None:
        self._clock = clock
        self._monotonic = monotonic
        self._ttl = reservation_ttl
        self._rules: dict[tuple[str, str], QuotaRule] = {}
        self._counters: dict[_Key, _Counter] = {}

    def set_rules(self, rules: Iterable[QuotaRule]) -> None:
        self._rules = {(r.tenant_id, r.operation): r for r in rules}

    def put_rule(self, rule: QuotaRule) -> None:
        self._rules[(rule.tenant_id, rule.operation)] = rule

    def record(
        self,
        tenant_id: str,
        operation: str,
        unit: str,
        quantity: Decimal,
        amount: Decimal,
        used_at: datetime,
    ) -> None:
        """Count usage the ledger has applied (once per event). Usage of an earlier period
        than the current one no longer matters and is ignored."""
        now = self._clock()
        for period in Period:
            start = period_bounds(now, period)[0]
            if period_bounds(used_at, period)[0] != start:
                continue
            counter = self._counter((tenant_id, operation, unit, period), start)
            counter.used = EXACT.add(counter.used, quantity)
            counter.release(quantity)
            spend = self._counter((tenant_id, MONEY, "", period), start)
            spend.used = EXACT.add(spend.used, amount)

    def check(self, tenant_id: str, operation: str, quantity: Decimal) -> QuotaAnswer:
        """Allowed when every quota on the operation and on the tenant's spend has room;
        an allowed non-zero quantity is reserved until its usage is recorded."""
        now, tick = self._clock(), self._monotonic()
        operations = (operation,) if operation == MONEY else (operation, MONEY)
        answers: list[tuple[QuotaAnswer, _Counter]] = []
        for op in operations:
            rule = self._rules.get((tenant_id, op))
            if rule is None:
                continue
            start, end = period_bounds(now, rule.period)
            counter = self._counter(_key(rule), start)
            counter.expire(tick)
            asked = ZERO if rule.is_money else quantity
            verdict = evaluate(rule.limit, counter.total, asked, rule.soft_ratio)
            retry = 0 if verdict.allowed else seconds_until(end, now)
            answer = QuotaAnswer(
                verdict.allowed, verdict.soft_limit_reached, rule, verdict.used, end, retry
            )
            answers.append((answer, counter))
        if not answers:
            return _UNLIMITED
        denied = [answer for answer, _ in answers if not answer.allowed]
        if not denied and quantity > 0:
            for answer, counter in answers:
                if answer.rule is not None and not answer.rule.is_money:
                    counter.hold(quantity, tick + self._ttl)
        reported = denied[0] if denied else answers[0][0]
        return QuotaAnswer(
            allowed=not denied,
            soft_limit_reached=any(answer.soft_limit_reached for answer, _ in answers),
            rule=reported.rule,
            used=reported.used,
            period_end=reported.period_end,
            retry_after_seconds=max((answer.retry_after_seconds for answer in denied), default=0),
        )

    def standing(self, tenant_id: str) -> list[QuotaAnswer]:
        """Each of the tenant's quotas with what its current period has used (reserved
        quantities included), by operation; nothing is reserved by asking."""
        now, tick = self._clock(), self._monotonic()
        answers = []
        for (tenant, _), rule in sorted(self._rules.items()):
            if tenant != tenant_id:
                continue
            start, end = period_bounds(now, rule.period)
            counter = self._counter(_key(rule), start)
            counter.expire(tick)
            verdict = evaluate(rule.limit, counter.total, ZERO, rule.soft_ratio)
            answers.append(
                QuotaAnswer(verdict.allowed, verdict.soft_limit_reached, rule, verdict.used, end, 0)
            )
        return answers

    def _counter(self, key: _Key, start: datetime) -> _Counter:
        """The key's counter for the period starting at `start` (a new period starts empty)."""
        counter = self._counters.get(key)
        if counter is None or counter.start != start:
            counter = self._counters[key] = _Counter(start)
        return counter


def _key(rule: QuotaRule) -> _Key:
    unit = "" if rule.is_money else rule.unit
    return (rule.tenant_id, rule.operation, unit, rule.period)

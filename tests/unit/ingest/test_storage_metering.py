"""Storage metering's rules without I/O: which periods are due, their ids and exact byte-hours."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from services.ingest.domain.storage import (
    Holding,
    check_storage_period,
    period_end,
    storage_event_id,
    storage_periods,
    storage_usage_payload,
)

HOUR = timedelta(hours=1)


def at(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 3, day, hour, minute, tzinfo=UTC)


@pytest.mark.parametrize("hours", [1, 2, 3, 4, 6, 8, 12, 24])
def test_periods_of_whole_hours_dividing_a_day_are_allowed(hours: int) -> None:
    check_storage_period(timedelta(hours=hours))


@pytest.mark.parametrize(
    "every",
    [timedelta(0), -HOUR, timedelta(minutes=30), timedelta(minutes=90), 5 * HOUR, 48 * HOUR],
)
def test_other_periods_are_refused(every: timedelta) -> None:
    with pytest.raises(ValueError, match="whole number of hours that divides 24"):
        check_storage_period(every)


def test_periods_start_on_utc_hours_and_midnight() -> None:
    assert period_end(at(1, 9, 30), HOUR) == at(1, 10)
    assert period_end(at(1, 10), HOUR) == at(1, 11)  # a boundary starts the next period
    assert period_end(at(1, 23, 59), 6 * HOUR) == at(2, 0)


def test_first_run_measures_only_the_period_that_just_closed() -> None:
    assert storage_periods(None, at(1, 10, 7), HOUR) == [(at(1, 9), at(1, 10))]


def test_every_period_since_the_watermark_is_due_oldest_first() -> None:
    assert storage_periods(at(1, 7), at(1, 10), HOUR) == [
        (at(1, 7), at(1, 8)),
        (at(1, 8), at(1, 9)),
        (at(1, 9), at(1, 10)),
    ]
    assert storage_periods(at(1, 10), at(1, 10, 59), HOUR) == []


def test_a_changed_period_continues_without_a_gap() -> None:
    # Metered hourly until 01:00, then every 2 hours: 01:00-02:00 first, then on even hours.
    assert storage_periods(at(1, 1), at(1, 6, 30), 2 * HOUR) == [
        (at(1, 1), at(1, 2)),
        (at(1, 2), at(1, 4)),
        (at(1, 4), at(1, 6)),
    ]


def test_an_event_id_is_one_per_tenant_and_period() -> None:
    first = storage_event_id("acme", at(1, 9), at(1, 10))
    paris = timezone(timedelta(hours=1))
    assert first == storage_event_id("acme", at(1, 9).astimezone(paris), at(1, 10))
    assert first != storage_event_id("globex", at(1, 9), at(1, 10))
    assert first != storage_event_id("acme", at(1, 10), at(1, 11))
    assert uuid.UUID(first).int >> 80 == int(at(1, 10).timestamp() * 1000)  # sorts at its end


def test_usage_is_exact_byte_hours_dated_at_the_period_start() -> None:
    held = Holding("acme", atoms=3, bytes=2**40 + 7)
    usage = storage_usage_payload(held, at(1, 0), at(2, 0))
    assert usage.quantity == Decimal((2**40 + 7) * 24)
    assert usage.quantity.as_tuple().exponent == -9  # the UsageRecorded scale
    assert (usage.operation, usage.unit, usage.used_at) == (
        "storage",
        "byte_hours",
        at(1, 0),
    )
    assert usage.resource_id == "2026-03-01T00:00:00+00:00/2026-03-02T00:00:00+00:00"
    with pytest.raises(ValueError, match="whole number of hours"):
        storage_usage_payload(held, at(1, 0), at(1, 0, 30))

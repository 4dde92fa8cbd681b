"""Storage metering: which periods are due, and what each tenant is billed for one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hartonomous.events import named_event_id, usage_quantity
from hartonomous.events.payloads import StorageMeasured, UsageRecorded

STORAGE_PERIOD = timedelta(hours=1)
"""How often each tenant's storage is measured and billed, by default."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_HOUR = timedelta(hours=1)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class Holding:
    """What one tenant references at some instant: its atoms and their total size."""

    tenant_id: str
    atoms: int
    bytes: int


def check_storage_period(every: timedelta) -> None:
    """Periods are whole hours that divide a day: so they start on UTC hours, never straddle a
    day (nor a month, where invoices cut), and bytes x hours is an exact whole number."""
    if every <= timedelta(0) or every % _HOUR or _DAY % every:
        raise ValueError(
            f"the storage metering period must be a whole number of hours that divides 24,"
            f" got {every}"
        )


def storage_periods(
    metered_until: datetime | None, now: datetime, every: timedelta
) -> list[tuple[datetime, datetime]]:
    """The [start, end) periods to measure, oldest first: from where metering stopped to the
    last period boundary at or before `now`. With nothing metered yet, only the period that
    just closed (storage held before metering began is not billed)."""
    last = period_end(now, every) - every
    start = last - every if metered_until is None else metered_until
    periods = []
    while start < last:
        # After a change of `every` the first period may be shorter; there is never a gap.
        end = period_end(start, every)
        periods.append((start, end))
        start = end
    return periods


def period_end(at: datetime, every: timedelta) -> datetime:
    """The end of the period holding `at`. Periods are [k * every, (k + 1) * every) from the
    Unix epoch on: they start on UTC hours, and on midnight each day."""
    return at - (at - _EPOCH) % every + every


def storage_event_id(tenant_id: str, start: datetime, end: datetime) -> str:
    """One id per tenant and period, whoever measures it and however often."""
    name = f"StorageMeasured\0{tenant_id}\0{_interval(start, end)}"
    return named_event_id((end - _EPOCH) // timedelta(milliseconds=1), name)


def _interval(start: datetime, end: datetime) -> str:
    """The period as an ISO 8601 interval in UTC: one spelling per period."""
    return f"{start.astimezone(UTC).isoformat()}/{end.astimezone(UTC).isoformat()}"


def storage_payload(holding: Holding, start: datetime, end: datetime) -> StorageMeasured:
    return StorageMeasured(
        tenant_id=holding.tenant_id,
        atoms=holding.atoms,
        bytes=holding.bytes,
        period_start=start,
        period_end=end,
    )


def storage_usage_payload(holding: Holding, start: datetime, end: datetime) -> UsageRecorded:
    """Storage is metered in byte-hours: the bytes held times the period's whole hours. The
    usage is dated at the period's start, so it falls in the day the period covers."""
    hours, rest = divmod(end - start, _HOUR)
    if rest:
        raise ValueError(f"storage period {start} to {end} is not a whole number of hours")
    return UsageRecorded(
        tenant_id=holding.tenant_id,
        operation="storage",
        unit="byte_hours",
        quantity=usage_quantity(holding.bytes * hours),
        resource_id=_interval(start, end),
        used_at=start,
    )

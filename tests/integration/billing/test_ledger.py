"""The ledger consumer on a real embedded log and Postgres: idempotent by event id, priced at
the rate card in effect when the usage happened, exact."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from hartonomous.v1 import billing_pb2
from services.billing.service import BillingService
from services.billing.tunables import LEDGER_GROUP
from tests.integration.billing.conftest import Billing, eventually, start_billing, usage

MARCH = datetime(2025, 3, 1, tzinfo=UTC)


def day(n: int) -> datetime:
    return datetime(2025, 3, n, 12, tzinfo=UTC)


async def cost(billing: Billing, tenant: str = "acme") -> tuple[str, str]:
    reply = await billing.stub.GetUsage(billing_pb2.UsageRequest(tenant_id=tenant))
    [line] = reply.lines
    return line.quantity, reply.total_cost


async def test_the_same_event_appended_again_is_counted_once(billing: Billing) -> None:
    await billing.put_rates(MARCH, ("embed", "tokens", "0.5"))
    record = usage(quantity="4", used_at=day(2))
    await billing.event_log.append([record, record])  # twice in one batch
    await billing.event_log.append([record, usage(quantity="1", used_at=day(2))])  # and once more
    await billing.wait_ledger(2)
    await _wait_handled(billing, 4)
    assert await billing.ledger_size() == 2
    assert await cost(billing) == ("5", "2.5")


async def test_one_stored_record_handled_twice_is_counted_once(billing: Billing) -> None:
    """A re-delivered record is skipped by the inbox; applied again without it (a copy), the
    ledger's key on the event id still counts it once, and so does the quota book."""
    await billing.stub.PutQuota(
        billing_pb2.PutQuotaRequest(tenant_id="acme", operation="embed", limit="100", unit="tokens")
    )
    await billing.harness.stop_consumers()
    await billing.event_log.append([usage(quantity="7")])
    [record] = [r async for r in billing.event_log.replay("usage", from_offset=0)]
    [runner] = billing.harness.consumers
    await runner.apply([record])
    await runner.apply([record])
    await billing.sql("delete from billing.inbox")
    await runner.apply([record])
    assert await billing.ledger_size() == 1
    check = billing_pb2.QuotaCheckRequest(tenant_id="acme", operation="embed")
    assert (await billing.stub.CheckQuota(check)).used == "7"


async def test_records_consumed_again_after_a_restart_are_counted_once(
    billing: Billing,
) -> None:
    await billing.stub.PutQuota(
        billing_pb2.PutQuotaRequest(tenant_id="acme", operation="embed", limit="100", unit="tokens")
    )
    await billing.event_log.append([usage(quantity="10") for _ in range(3)])
    await billing.wait_ledger(3)
    await billing.harness.stop()
    # Forget the group's committed offsets: the next consumer reads the topic from the start.
    await billing.sql("delete from log.group_offsets where group_id = $1", LEDGER_GROUP)
    again = await start_billing(billing.pg_url, billing.event_log, BillingService())
    try:
        await _wait_handled(again, 3)
        assert await again.ledger_size() == 3
        check = billing_pb2.QuotaCheckRequest(tenant_id="acme", operation="embed", quantity="0")
        assert (await again.stub.CheckQuota(check)).used == "30"
        assert await cost(again) == ("30", "0")
    finally:
        await again.harness.stop()


async def _wait_handled(billing: Billing, records: int) -> None:
    async def handled() -> bool:
        return await _committed(billing) >= records

    await eventually(handled)


async def _committed(billing: Billing) -> int:
    rows = await billing.sql(
        "select coalesce(sum(next_offset), 0) from log.group_offsets"
        " where group_id = $1 and topic = 'usage'",
        LEDGER_GROUP,
    )
    return int(rows[0][0])


async def test_a_price_change_mid_period_keeps_each_charge_at_its_price(billing: Billing) -> None:
    first = await billing.put_rates(datetime(2025, 1, 1, tzinfo=UTC), ("embed", "tokens", "0.001"))
    second = await billing.put_rates(day(15), ("embed", "tokens", "0.002"))
    await billing.event_log.append(
        [
            usage(quantity="1000", used_at=day(10)),
            usage(quantity="1000", used_at=day(14)),
            usage(quantity="500", used_at=day(20)),
        ]
    )
    await billing.wait_ledger(3)
    rows = await billing.sql(
        "select rate_version, unit_price, amount from billing.ledger order by used_at"
    )
    assert [tuple(r) for r in rows] == [
        (first.version, Decimal("0.001"), Decimal("1")),
        (first.version, Decimal("0.001"), Decimal("1")),
        (second.version, Decimal("0.002"), Decimal("1")),
    ]

    request = billing_pb2.IssueInvoiceRequest(tenant_id="acme")
    request.period_start.FromDatetime(MARCH)
    request.period_end.FromDatetime(datetime(2025, 4, 1, tzinfo=UTC))
    invoice = await billing.stub.IssueInvoice(request)
    assert [(x.quantity, x.unit_price, x.amount) for x in invoice.lines] == [
        ("2000", "0.001", "2.00"),
        ("500", "0.002", "1.00"),
    ]
    assert (invoice.total, invoice.currency) == ("3.00", "USD")

    # A later price change never rewrites a past charge.
    await billing.put_rates(datetime(2025, 4, 1, tzinfo=UTC), ("embed", "tokens", "9"))
    assert [tuple(r) for r in await billing.sql(
        "select rate_version, unit_price, amount from billing.ledger order by used_at"
    )] == [tuple(r) for r in rows]  # fmt: skip


async def test_usage_without_a_rate_is_kept_at_price_zero_with_a_warning(
    billing: Billing, caplog: pytest.LogCaptureFixture
) -> None:
    await billing.put_rates(MARCH, ("embed", "tokens", "1"))
    with caplog.at_level(logging.WARNING, logger="services.billing.handlers"):
        await billing.event_log.append(
            [usage(quantity="3", operation="transcribe", unit="seconds")]
        )
        await billing.wait_ledger(1)
    reply = await billing.stub.GetUsage(billing_pb2.UsageRequest(tenant_id="acme"))
    [line] = reply.lines
    assert (line.operation, line.quantity, line.cost, line.events) == ("transcribe", "3", "0", 1)
    [warning] = [r for r in caplog.records if "no rate" in r.getMessage()]
    assert warning.__dict__["operation"] == "transcribe"


async def test_multipliers_by_plan_model_and_dimension(billing: Billing) -> None:
    await billing.stub.PutQuota(
        billing_pb2.PutQuotaRequest(
            tenant_id="acme", operation="embed", limit="1e9", unit="tokens", plan="pro"
        )
    )
    await billing.put_rates(
        MARCH, ("embed", "tokens", "0.01"), plan__pro="0.5", model__big="4", device__gpu="1.5"
    )
    now = datetime.now(UTC)  # the plan applies from when it was set
    await billing.event_log.append(
        [
            usage(quantity="100", used_at=now),  # plan: x0.5
            usage(quantity="100", used_at=now, resource_id="big"),  # x0.5 x4
            usage(quantity="100", used_at=now, dimensions={"device": "gpu"}),  # x0.5 x1.5
            usage("globex", quantity="100", used_at=now),  # no plan: x1
        ]
    )
    await billing.wait_ledger(4)
    assert await cost(billing) == ("300", "3.25")
    assert await cost(billing, "globex") == ("100", "1")


async def test_ten_thousand_tenth_millionths_sum_exactly(billing: Billing) -> None:
    await billing.put_rates(MARCH, ("embed", "tokens", "0.0000001"))
    records = [usage(quantity="1", used_at=day(3)) for _ in range(10_000)]
    for start in range(0, len(records), 1000):
        await billing.event_log.append(records[start : start + 1000])
    await billing.wait_ledger(10_000, timeout=45)
    assert await cost(billing) == ("10000", "0.001")

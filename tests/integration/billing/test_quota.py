"""CheckQuota over gRPC against the in-memory book, with the ledger consumer feeding it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from hartonomous.v1 import billing_pb2
from tests.integration.billing.conftest import Billing, usage


async def test_a_burst_is_cut_at_the_limit_while_its_events_are_in_flight(
    billing: Billing,
) -> None:
    await billing.stub.PutQuota(
        billing_pb2.PutQuotaRequest(tenant_id="acme", operation="embed", limit="20", unit="tokens")
    )

    async def request() -> billing_pb2.QuotaDecision:
        check = billing_pb2.QuotaCheckRequest(tenant_id="acme", operation="embed", quantity="1")
        decision: billing_pb2.QuotaDecision = await billing.stub.CheckQuota(check)
        if decision.allowed:
            await billing.event_log.append([usage(quantity="1")])  # served, and metered
        return decision

    now = datetime.now(UTC)
    decisions = await asyncio.gather(*(request() for _ in range(50)))
    assert sum(d.allowed for d in decisions) == 20
    denied = [d for d in decisions if not d.allowed]
    month_end = datetime(now.year + now.month // 12, now.month % 12 + 1, 1, tzinfo=UTC)
    for decision in denied:
        assert (decision.limit, decision.used, decision.unit) == ("20", "20", "tokens")
        assert decision.period_end.ToDatetime(tzinfo=UTC) == month_end
        assert 0 < decision.retry_after_seconds <= (month_end - now).total_seconds() + 1

    # Once the ledger has counted the usage, the reservations are gone and the total holds.
    await billing.wait_ledger(20)
    after = await billing.stub.CheckQuota(
        billing_pb2.QuotaCheckRequest(tenant_id="acme", operation="embed", quantity="1")
    )
    assert (after.allowed, after.used, after.soft_limit_reached) == (False, "20", True)


async def test_quotas_set_elsewhere_and_usage_already_in_the_ledger_count(
    billing: Billing,
) -> None:
    await billing.event_log.append(
        [usage("globex", quantity="30", operation="search", unit="requests")]
    )
    await billing.wait_ledger(1)
    # Another process (the CLI) sets the quota in Postgres: the service hears of it.
    await billing.sql(
        "insert into billing.quotas values ('globex', 'search', 40, 'requests', 'day', 0.5)"
    )
    await billing.sql("select pg_notify('billing_config', '')")
    check = billing_pb2.QuotaCheckRequest(tenant_id="globex", operation="search", quantity="5")
    for _ in range(100):
        decision = await billing.stub.CheckQuota(check)
        if decision.limit:
            break
        await asyncio.sleep(0.05)
    assert (decision.allowed, decision.used, decision.soft_limit_reached) == (True, "35", True)
    assert (await billing.stub.CheckQuota(check)).used == "40"  # 30 used, 2 x 5 reserved
    assert not (await billing.stub.CheckQuota(check)).allowed


async def test_a_tenant_without_a_quota_is_allowed_without_numbers(billing: Billing) -> None:
    decision = await billing.stub.CheckQuota(
        billing_pb2.QuotaCheckRequest(tenant_id="acme", operation="embed")
    )
    assert decision.allowed and decision.limit == "" and not decision.HasField("period_end")

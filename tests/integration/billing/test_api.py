"""The gRPC servicer over a real in-process server: statuses and message shapes."""

from __future__ import annotations

from datetime import UTC, datetime

import grpc
import pytest

from hartonomous.v1 import billing_pb2
from tests.integration.billing.conftest import Billing, usage


async def status_of(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as error:
        await call  # type: ignore[misc]
    code: grpc.StatusCode = error.value.code()
    return code


BAD_REQUESTS = [
    ("CheckQuota", billing_pb2.QuotaCheckRequest(tenant_id="acme", operation="embed", quantity="1.2.3"), "INVALID_ARGUMENT"),
    ("CheckQuota", billing_pb2.QuotaCheckRequest(tenant_id="acme", operation="embed", quantity="-1"), "INVALID_ARGUMENT"),
    ("CheckQuota", billing_pb2.QuotaCheckRequest(operation="embed"), "INVALID_ARGUMENT"),
    ("PutRates", billing_pb2.PutRatesRequest(rates=[billing_pb2.Rate(operation="embed", unit="tokens", unit_price="0,1")]), "INVALID_ARGUMENT"),
    ("PutRates", billing_pb2.PutRatesRequest(multipliers=[billing_pb2.Multiplier(dimension="plan", value="pro", factor="NaN")]), "INVALID_ARGUMENT"),
    ("PutQuota", billing_pb2.PutQuotaRequest(tenant_id="acme", operation="embed", limit="1e400", unit="tokens"), "INVALID_ARGUMENT"),
    ("PutQuota", billing_pb2.PutQuotaRequest(tenant_id="acme", operation="*", limit="10", unit="tokens"), "INVALID_ARGUMENT"),
    ("GetInvoice", billing_pb2.GetInvoiceRequest(tenant_id="acme", invoice_id="nope"), "NOT_FOUND"),
    ("GetRates", billing_pb2.GetRatesRequest(), "NOT_FOUND"),
    ("GetUsage", billing_pb2.UsageRequest(), "INVALID_ARGUMENT"),
]  # fmt: skip


async def test_bad_requests_get_their_status(billing: Billing) -> None:
    for method, request, code in BAD_REQUESTS:
        status = await status_of(getattr(billing.stub, method)(request))
        assert status == grpc.StatusCode[code], (method, request)


async def test_rates_usage_and_quota_messages(billing: Billing) -> None:
    card = await billing.put_rates(
        datetime(2025, 1, 1, tzinfo=UTC), ("embed", "tokens", "1e-7"), plan__pro="0.80"
    )
    assert (card.version, card.currency) == (1, "USD")
    assert [(r.operation, r.unit, r.unit_price) for r in card.rates] == [
        ("embed", "tokens", "0.0000001")
    ]
    assert [(m.dimension, m.value, m.factor) for m in card.multipliers] == [("plan", "pro", "0.8")]
    at = billing_pb2.GetRatesRequest()
    at.at.FromDatetime(datetime(2024, 12, 31, tzinfo=UTC))
    assert await status_of(billing.stub.GetRates(at)) == grpc.StatusCode.NOT_FOUND
    assert await billing.stub.GetRates(billing_pb2.GetRatesRequest()) == card

    quota = await billing.stub.PutQuota(
        billing_pb2.PutQuotaRequest(
            tenant_id="acme", operation="*", limit="250.00", unit="USD",
            period=billing_pb2.QUOTA_PERIOD_DAY, soft_limit_ratio="0.9", plan="pro",
        )
    )  # fmt: skip
    assert (quota.limit, quota.period, quota.soft_limit_ratio, quota.plan) == (
        "250",
        billing_pb2.QUOTA_PERIOD_DAY,
        "0.9",
        "pro",
    )

    days = [datetime(2025, 5, d, 8, tzinfo=UTC) for d in (1, 1, 2)]
    await billing.event_log.append([usage(quantity="1000", used_at=d) for d in days])
    await billing.wait_ledger(3)
    request = billing_pb2.UsageRequest(tenant_id="acme", group_by=billing_pb2.USAGE_GROUPING_DAY)
    getattr(request, "from").FromDatetime(datetime(2025, 5, 1, tzinfo=UTC))
    request.to.FromDatetime(datetime(2025, 5, 2, tzinfo=UTC))
    reply = await billing.stub.GetUsage(request)
    assert [(x.day, x.operation, x.quantity, x.cost, x.events) for x in reply.lines] == [
        ("2025-05-01", "embed", "2000", "0.0002", 2)
    ]
    assert (reply.currency, reply.total_cost) == ("USD", "0.0002")

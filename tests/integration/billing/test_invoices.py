"""Invoices: closed periods only, immutable once issued, issued once per period, per tenant."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import grpc
import pytest

from hartonomous.v1 import billing_pb2
from tests.integration.billing.conftest import Billing, usage

FEB, MAR, APR = (datetime(2025, m, 1, tzinfo=UTC) for m in (2, 3, 4))


def issue(tenant: str, start: datetime, end: datetime) -> billing_pb2.IssueInvoiceRequest:
    request = billing_pb2.IssueInvoiceRequest(tenant_id=tenant)
    request.period_start.FromDatetime(start)
    request.period_end.FromDatetime(end)
    return request


async def test_an_issued_invoice_never_changes(billing: Billing) -> None:
    await billing.put_rates(FEB, ("embed", "tokens", "0.01"), ("search", "requests", "0.005"))
    await billing.event_log.append(
        [
            usage(quantity="150", used_at=datetime(2025, 3, 2, tzinfo=UTC)),
            usage(quantity="3", operation="search", unit="requests", used_at=MAR),
            usage(quantity="999", used_at=APR),  # the next period
        ]
    )
    await billing.wait_ledger(3)
    first = await billing.stub.IssueInvoice(issue("acme", MAR, APR))
    assert [(x.operation, x.quantity, x.unit_price, x.amount) for x in first.lines] == [
        ("embed", "150", "0.01", "1.50"),
        ("search", "3", "0.005", "0.02"),  # 0.015 rounds half up, once per line
    ]
    assert first.total == "1.52"

    # Late usage for the period: in the ledger, not on the issued invoice.
    await billing.event_log.append(
        [usage(quantity="100", used_at=datetime(2025, 3, 9, tzinfo=UTC))]
    )
    await billing.wait_ledger(4)
    again = await billing.stub.IssueInvoice(issue("acme", MAR, APR))
    assert again == first
    listed = await billing.stub.ListInvoices(billing_pb2.ListInvoicesRequest(tenant_id="acme"))
    assert list(listed.invoices) == [first]
    got = await billing.stub.GetInvoice(
        billing_pb2.GetInvoiceRequest(tenant_id="acme", invoice_id=first.invoice_id)
    )
    assert got == first

    for statement in (
        "update billing.invoice_lines set amount = 0",
        "update billing.invoices set total = 0",
        "delete from billing.invoices",
    ):
        with pytest.raises(asyncpg.RaiseError, match="immutable"):
            await billing.sql(statement)

    # A rate card cannot be back-dated into the invoiced period.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await billing.put_rates(datetime(2025, 3, 15, tzinfo=UTC), ("embed", "tokens", "1"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_overlapping_open_and_foreign_invoices_are_refused(billing: Billing) -> None:
    january = await billing.stub.IssueInvoice(issue("acme", datetime(2025, 1, 1, tzinfo=UTC), FEB))
    assert (january.total, list(january.lines)) == ("0.00", [])
    cases = [
        (
            issue("acme", datetime(2025, 1, 15, tzinfo=UTC), MAR),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (issue("acme", MAR, datetime(2099, 1, 1, tzinfo=UTC)), grpc.StatusCode.FAILED_PRECONDITION),
        (issue("acme", MAR, FEB), grpc.StatusCode.INVALID_ARGUMENT),
        (billing_pb2.IssueInvoiceRequest(tenant_id="acme"), grpc.StatusCode.INVALID_ARGUMENT),
    ]
    for request, code in cases:
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await billing.stub.IssueInvoice(request)
        assert refused.value.code() == code, refused.value.details()

    # Another tenant's invoice id is simply not found; its list is empty.
    with pytest.raises(grpc.aio.AioRpcError) as foreign:
        await billing.stub.GetInvoice(
            billing_pb2.GetInvoiceRequest(tenant_id="globex", invoice_id=january.invoice_id)
        )
    assert foreign.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await billing.stub.ListInvoices(billing_pb2.ListInvoicesRequest(tenant_id="globex"))
    assert list(listed.invoices) == []

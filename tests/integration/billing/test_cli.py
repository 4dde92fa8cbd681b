"""`hartonomous billing ...` against the same Postgres and log as a running billing service."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from tests.integration.billing.conftest import Billing, billing_cli, usage

Capture = pytest.CaptureFixture[str]


async def test_rates_quota_usage_and_invoices(billing: Billing, capsys: Capture) -> None:
    url = billing.pg_url
    first = await billing_cli(
        url, capsys, "rates", "set", "--operation", "embed", "--unit", "tokens",
        "--price", "0.0000001", "--effective-from", "2025-01-01",
    )  # fmt: skip
    assert (first.code, first.out.splitlines()[-1]) == (0, "1")
    second = await billing_cli(
        url, capsys, "rates", "set", "--operation", "search", "--unit", "requests",
        "--price", "0.002", "--multiplier", "plan=pro=0.5", "--effective-from", "2025-02-01",
    )  # fmt: skip
    assert second.out.splitlines()[-1] == "2"
    shown = await billing_cli(url, capsys, "rates", "show", "--json")
    card = json.loads(shown.out)
    assert card["version"] == "2"  # int64 is a JSON string in the proto mapping
    assert {(r["operation"], r["unit_price"]) for r in card["rates"]} == {
        ("embed", "0.0000001"),
        ("search", "0.002"),
    }
    assert card["multipliers"] == [{"dimension": "plan", "value": "pro", "factor": "0.5"}]
    bad = await billing_cli(
        url, capsys, "rates", "set", "--operation", "x", "--unit", "y", "--price", "1,5"
    )
    assert bad.code == 2 and "decimal" in bad.err

    quota = await billing_cli(
        url, capsys, "quota", "set", "--tenant", "acme", "--operation", "embed",
        "--limit", "1000000", "--unit", "tokens", "--period", "day", "--soft", "0.9",
    )  # fmt: skip
    assert quota.code == 0 and "per day" in quota.out

    march = datetime(2025, 3, 3, tzinfo=UTC)
    await billing.event_log.append(
        [usage(quantity="10000", used_at=march), usage(quantity="5", operation="search", unit="requests", used_at=march)]
    )  # fmt: skip
    await billing.wait_ledger(2)
    used = await billing_cli(
        url, capsys, "usage", "--tenant", "acme", "--group-by", "day", "--json"
    )
    report = json.loads(used.out)
    assert report["total_cost"] == "0.011"
    assert [(x["day"], x["operation"], x["cost"]) for x in report["lines"]] == [
        ("2025-03-03", "embed", "0.001"),
        ("2025-03-03", "search", "0.01"),
    ]

    issued = await billing_cli(
        url, capsys, "invoice", "issue", "--tenant", "acme", "--from", "2025-03-01", "--to", "2025-04-01"
    )  # fmt: skip
    invoice_id = issued.out.splitlines()[-1]
    again = await billing_cli(
        url, capsys, "invoice", "issue", "--tenant", "acme", "--from", "2025-03-01", "--to", "2025-04-01"
    )  # fmt: skip
    assert again.out.splitlines()[-1] == invoice_id
    listed = json.loads(
        (await billing_cli(url, capsys, "invoices", "--tenant", "acme", "--json")).out
    )
    assert [(i["invoice_id"], i["total"]) for i in listed] == [(invoice_id, "0.01")]
    still_open = await billing_cli(
        url, capsys, "invoice", "issue", "--tenant", "acme", "--from", "2025-04-01", "--to", "2099-01-01"
    )  # fmt: skip
    assert still_open.code == 1 and "still open" in still_open.err


async def test_reconcile_passes_then_catches_a_tampered_row(
    billing: Billing, capsys: Capture
) -> None:
    await billing.put_rates(datetime(2025, 1, 1, tzinfo=UTC), ("embed", "tokens", "0.01"))
    days = [datetime(2025, 6, d, tzinfo=UTC) for d in (1, 1, 2, 3)]
    records = [usage(t, quantity="100", used_at=d) for d in days for t in ("acme", "globex")]
    await billing.event_log.append([*records, records[0]])  # a duplicate copy too
    await billing.wait_ledger(8)

    # Usage the live ledger has not reached yet is left out, not reported as a difference.
    await billing.harness.stop_consumers()
    await billing.event_log.append([usage(quantity="5", used_at=days[0])])
    clean = await billing_cli(billing.pg_url, capsys, "reconcile")
    assert clean.code == 0, clean.out + clean.err
    assert "ledger matches the log: 6 tenant-days" in clean.out
    assert "1 not yet applied" in clean.out

    await billing.sql(
        "update billing.ledger set amount = amount + 0.001 where event_id ="
        " (select min(event_id) from billing.ledger where tenant_id = 'globex'"
        "  and used_at = '2025-06-02')"
    )
    tampered = await billing_cli(billing.pg_url, capsys, "reconcile")
    assert tampered.code == 1
    [row] = [line for line in tampered.out.splitlines() if line.startswith("globex")]
    assert row.split() == ["globex", "2025-06-02", "1.001", "1", "0.001"]
    assert "1 of 6 tenant-days differ" in tampered.out
    leftovers = await billing.sql(
        "select nspname from pg_namespace where nspname like 'billing_reconcile_%'"
    )
    assert leftovers == []

"""A ledger written by the previous version (its positions in its own `billing.progress`
table) is upgraded in place: the positions move into the kernel's inbox, and a platform
started on it resumes where it was, with no usage counted twice."""

from __future__ import annotations

from decimal import Decimal

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.v1 import billing_pb2
from services.billing.service import BillingService
from services.billing.tunables import LEDGER_GROUP
from tests.integration.billing.conftest import Billing, start_billing, usage

# How the previous version kept the ledger's place: the offset after the last record applied.
PREVIOUS_LAYOUT = f"""
create table billing.progress (
    topic text not null,
    partition int not null,
    next_offset bigint not null,
    primary key (topic, partition));
insert into billing.progress
    select topic, partition, "offset" + 1 from billing.inbox where consumer = '{LEDGER_GROUP}';
drop table billing.inbox;
"""


async def used(billing: Billing) -> str:
    check = billing_pb2.QuotaCheckRequest(tenant_id="acme", operation="embed", quantity="0")
    return (await billing.stub.CheckQuota(check)).used


async def test_an_old_ledger_resumes_where_it_was_and_counts_nothing_twice(
    billing: Billing, eventlog: EmbeddedEventLog
) -> None:
    await billing.stub.PutQuota(
        billing_pb2.PutQuotaRequest(tenant_id="acme", operation="embed", limit="1e6", unit="tokens")
    )
    await eventlog.append([usage(quantity=str(n)) for n in range(1, 6)])  # 15 tokens
    await billing.wait_ledger(5)
    await billing.harness.stop()
    positions = await billing.sql('select topic, partition, "offset" from billing.inbox')
    for statement in filter(str.strip, PREVIOUS_LAYOUT.split(";")):
        await billing.sql(statement)
    # Even a group that lost its committed offsets (everything re-delivered) counts nothing
    # twice: the old positions are the inbox's now.
    await billing.sql("delete from log.group_offsets where group_id = $1", LEDGER_GROUP)

    upgraded = await start_billing(billing.pg_url, eventlog, BillingService(), consume=False)
    try:
        # Upgraded on start, before the projection runs: the old positions are the inbox's.
        carried = await upgraded.sql(
            'select topic, partition, "offset" from billing.inbox where consumer = $1',
            LEDGER_GROUP,
        )
        assert {tuple(r) for r in carried} == {tuple(r) for r in positions}
        gone = await upgraded.sql("select to_regclass('billing.progress') is null")
        assert gone[0][0], "the old table is dropped once its rows moved"

        upgraded.harness.run_consumers()
        await eventlog.append([usage(quantity="100")])
        await upgraded.wait_ledger(6)
        assert await upgraded.ledger_size() == 6
        assert await used(upgraded) == str(Decimal(115))
    finally:
        await upgraded.harness.stop()

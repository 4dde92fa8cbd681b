from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import Record
from hartonomous.events import Envelope, Event
from hartonomous.events.payloads import UsageRecorded
from hartonomous.settings import Settings, add_arguments
from hartonomous.v1 import billing_pb2, billing_pb2_grpc
from services.billing.commands import BillingCommand
from services.billing.quota import QuotaBook
from services.billing.service import BillingService
from tests.support.events import record_of
from tests.support.harness import Started, embedded_log, start

# Fails the insert of any UsageRecorded record, after the domain records of the same
# transaction were written (producers append the usage record last).
USAGE_WRITE_FAULT = """
create function log.fail_usage() returns trigger language plpgsql as $$
begin
  if new.headers->>'event_type' = 'UsageRecorded' then
    raise exception 'injected fault between the domain event and its usage';
  end if;
  return new;
end $$;
create trigger fail_usage before insert on log.records
  for each row execute function log.fail_usage();
"""


def usage(
    tenant: str = "acme",
    quantity: str | Decimal = "1",
    *,
    operation: str = "embed",
    unit: str = "tokens",
    used_at: datetime | None = None,
    resource_id: str = "minilm@1",
    dimensions: Mapping[str, str] | None = None,
    envelope: Envelope | None = None,
) -> Record:
    """A real UsageRecorded record, encoded through the kernel's codec."""
    payload = UsageRecorded(
        tenant_id=tenant,
        operation=operation,
        unit=unit,
        quantity=Decimal(quantity).quantize(Decimal("1e-9")),
        resource_id=resource_id,
        used_at=used_at or datetime.now(UTC),
        dimensions=dict(dimensions or {}),
    )
    envelope = envelope or Envelope.new("UsageRecorded", tenant_id=tenant, produced_by="tests")
    return record_of(Event(envelope, payload))


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{condition.__name__} still false after {timeout} s")
        await asyncio.sleep(0.05)


class Billing(Started[BillingService]):
    """The billing service started by the test harness, its ledger projection running."""

    @property
    def stub(self) -> billing_pb2_grpc.BillingStub:
        return billing_pb2_grpc.BillingStub(self.harness.channel)

    @property
    def book(self) -> QuotaBook:
        assert self.service.book is not None
        return self.service.book

    async def ledger_size(self) -> int:
        return int((await self.sql("select count(*) from billing.ledger"))[0][0])

    async def wait_ledger(self, size: int, timeout: float = 15.0) -> None:
        """Until the ledger holds `size` rows (and the book has counted them)."""

        async def filled() -> bool:
            return await self.ledger_size() >= size

        await eventually(filled, timeout)

    async def put_rates(
        self, effective_from: datetime, *rates: tuple[str, str, str], **factors: str
    ) -> billing_pb2.RateCard:
        """`factors`: dimension__value="factor", e.g. plan__pro="0.8"."""
        request = billing_pb2.PutRatesRequest(
            currency="USD",
            rates=[billing_pb2.Rate(operation=o, unit=u, unit_price=p) for o, u, p in rates],
            multipliers=[
                billing_pb2.Multiplier(dimension=k.split("__")[0], value=k.split("__")[1], factor=f)
                for k, f in factors.items()
            ],
        )
        request.effective_from.FromDatetime(effective_from)
        card: billing_pb2.RateCard = await self.stub.PutRates(request)
        return card


async def start_billing(
    pg_url: str, event_log: EmbeddedEventLog, service: BillingService, *, consume: bool = True
) -> Billing:
    return Billing(
        service, await start(service, event_log=event_log, pg_url=pg_url, consume=consume)
    )


@pytest.fixture
async def eventlog(pg_url: str) -> AsyncIterator[EmbeddedEventLog]:
    async with embedded_log(pg_url) as event_log:
        yield event_log


@pytest.fixture
async def billing(pg_url: str, eventlog: EmbeddedEventLog) -> AsyncIterator[Billing]:
    started = await start_billing(pg_url, eventlog, BillingService())
    try:
        yield started
    finally:
        await started.harness.stop()


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str


async def billing_cli(pg_url: str, capsys: pytest.CaptureFixture[str], *argv: str) -> CliResult:
    """`hartonomous billing ARGV...` in this process, as the kernel CLI parses and runs it."""
    command = BillingCommand()
    parser = argparse.ArgumentParser(prog="hartonomous billing")
    command.add_arguments(parser)
    add_arguments(parser)
    args = parser.parse_args(list(argv))
    settings = Settings(postgres_url=pg_url).with_args(args)
    capsys.readouterr()
    code = await command.run(args, settings)
    captured = capsys.readouterr()
    return CliResult(code, captured.out, captured.err)

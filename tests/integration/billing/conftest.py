from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import asyncpg
import grpc
import pytest

from hartonomous.eventlog.embedded import EmbeddedEventLog
from hartonomous.eventlog.port import Record
from hartonomous.eventlog.topics import platform_topics
from hartonomous.events import AvroCodec, Envelope, Event, encode_event
from hartonomous.runtime.grpc_server import GrpcHost
from hartonomous.runtime.service import ServiceContext, Wiring
from hartonomous.settings import Settings, add_arguments
from hartonomous.v1 import billing_pb2, billing_pb2_grpc
from services.billing import BillingService
from services.billing.commands import BillingCommand
from services.billing.quota import QuotaBook

CODEC = AvroCodec()

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
    payload = {
        "tenant_id": tenant,
        "operation": operation,
        "unit": unit,
        "quantity": Decimal(quantity).quantize(Decimal("1e-9")),
        "resource_id": resource_id,
        "used_at": used_at or datetime.now(UTC),
        "api_key_id": None,
        "dimensions": dict(dimensions or {}),
    }
    envelope = envelope or Envelope.new("UsageRecorded", tenant_id=tenant, produced_by="tests")
    return encode_event(CODEC, Event(envelope, payload), "usage", tenant)


async def eventually(condition: Callable[[], Awaitable[bool]], timeout: float = 15.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{condition.__name__} still false after {timeout} s")
        await asyncio.sleep(0.05)


@dataclass
class Billing:
    """The billing service on a real embedded log, Postgres and gRPC server, its ledger
    consumer running."""

    service: BillingService
    log: EmbeddedEventLog
    pg_url: str
    stub: billing_pb2_grpc.BillingStub
    wiring: Wiring
    host: GrpcHost
    channel: grpc.aio.Channel
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    @property
    def book(self) -> QuotaBook:
        assert self.service.book is not None
        return self.service.book

    def run_consumers(self) -> None:
        self.tasks = [asyncio.create_task(c.run()) for c in self.wiring.consumers]

    async def stop_consumers(self) -> None:
        for consumer in self.wiring.consumers:
            consumer.stop()
        await asyncio.gather(*self.tasks)

    async def sql(self, query: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(self.pg_url)
        try:
            return await conn.fetch(query, *args)
        finally:
            await conn.close()

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


async def start_billing(pg_url: str, log: EmbeddedEventLog, service: BillingService) -> Billing:
    wiring = await service.start(ServiceContext(Settings(), log, CODEC, pg_url))
    host = GrpcHost("127.0.0.1", 0)
    port = await host.start(wiring.grpc)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    stub = billing_pb2_grpc.BillingStub(channel)
    return Billing(service, log, pg_url, stub, wiring, host, channel)


async def stop_billing(billing: Billing) -> None:
    await billing.stop_consumers()
    await billing.channel.close()
    await billing.host.stop(grace=0)
    await billing.service.stop()


@pytest.fixture
async def eventlog(pg_url: str) -> AsyncIterator[EmbeddedEventLog]:
    log = EmbeddedEventLog(pg_url, heartbeat_interval=0.3, session_timeout=3.0)
    await log.start()
    await log.ensure_topics(platform_topics(partitions=2))
    try:
        yield log
    finally:
        await log.close()


@pytest.fixture
async def billing(pg_url: str, eventlog: EmbeddedEventLog) -> AsyncIterator[Billing]:
    started = await start_billing(pg_url, eventlog, BillingService())
    started.run_consumers()
    try:
        yield started
    finally:
        await stop_billing(started)


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

"""Receipts by generation id (Postgres schema `inference`), projected from the `inference`
topic so `verify` can find one; the request that appends a receipt also writes it here at
once (read-your-writes), and replaying the topic rebuilds the table."""

from __future__ import annotations

import json
from collections.abc import Mapping

import asyncpg

from hartonomous.events import Event
from hartonomous.events.payloads import InferencePerformed, Payload, from_avro, to_avro
from hartonomous.runtime.projection import Handler, Projection

SCHEMA = "inference"
GROUP = "inference-receipts"
_SETUP_LOCK = 0x494E_4652

_DDL = f"""
create schema if not exists {SCHEMA};
create table if not exists {SCHEMA}.receipts (
    generation_id text primary key,
    tenant_id text not null,
    receipt_json text not null,
    recorded_at timestamptz not null);
"""


class ReceiptStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def setup(self) -> None:
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("select pg_advisory_xact_lock($1)", _SETUP_LOCK)
            await conn.execute(_DDL)

    async def put(self, event: Event[InferencePerformed]) -> None:
        receipt = event.payload
        await self._pool.execute(
            f"insert into {SCHEMA}.receipts values ($1, $2, $3, $4)"
            " on conflict (generation_id) do nothing",
            receipt.generation_id,
            receipt.tenant_id,
            json.dumps(to_avro(receipt)),
            event.envelope.occurred_at,
        )

    async def get(self, generation_id: str) -> InferencePerformed | None:
        row = await self._pool.fetchval(
            f"select receipt_json from {SCHEMA}.receipts where generation_id = $1",
            generation_id,
        )
        return None if row is None else from_avro(InferencePerformed, json.loads(row))


async def on_inference_performed(store: ReceiptStore, event: Event[InferencePerformed]) -> None:
    await store.put(event)


HANDLERS: Mapping[type[Payload], Handler[ReceiptStore]] = {
    InferencePerformed: on_inference_performed,
}


def receipt_projection(store: ReceiptStore) -> Projection[ReceiptStore]:
    return Projection.one_at_a_time(GROUP, ["inference"], HANDLERS, store)

"""Real events for tests, built through the kernel's codec."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hartonomous.eventlog.port import Record
from hartonomous.events import AvroCodec, Envelope, Event, encode_event


def usage_record(codec: AvroCodec, topic: str, tenant: str, quantity: Decimal) -> Record:
    envelope = Envelope.new("UsageRecorded", tenant_id=tenant, produced_by="tests")
    payload = {
        "tenant_id": tenant,
        "operation": "embed",
        "unit": "tokens",
        "quantity": quantity.quantize(Decimal("1e-9")),
        "resource_id": "minilm",
        "used_at": datetime.now(UTC),
        "api_key_id": None,
        "dimensions": {},
    }
    return encode_event(codec, Event(envelope, payload), topic, tenant)

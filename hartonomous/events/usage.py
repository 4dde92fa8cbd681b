"""UsageRecorded quantities: an Avro decimal of scale 9 (UsageRecorded.avsc), so every producer
rounds an amount to that scale the same way before it is encoded."""

from __future__ import annotations

from decimal import Decimal

USAGE_QUANTUM = Decimal("1e-9")


def usage_quantity(amount: int | Decimal) -> Decimal:
    """`amount` at the scale UsageRecorded.quantity holds."""
    return Decimal(amount).quantize(USAGE_QUANTUM)

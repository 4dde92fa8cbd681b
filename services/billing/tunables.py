"""The billing service's tunables (the `hartonomous.tunables` entry point loads TUNABLES)."""

from __future__ import annotations

from hartonomous.tunables import consumer_batch

LEDGER_GROUP = "billing-ledger"
LEDGER_BATCH = 1000
"""Usage records priced and inserted per transaction: one commit per batch keeps up."""

TUNABLES = (consumer_batch(LEDGER_GROUP, owner="billing", default=LEDGER_BATCH),)

"""The billing service's tunables (the `hartonomous.tunables` entry point loads TUNABLES)."""

from __future__ import annotations

from hartonomous.tunables import consumer_batch, consumer_linger

LEDGER_GROUP = "billing-ledger"
LEDGER_BATCH = 1000
"""Usage records priced and inserted per transaction: one commit per batch keeps up."""
LEDGER_LINGER_MS = 100
"""A lone usage record waits this long for company: one ledger transaction per request
(claim, insert, commit, offsets) cost the request path more than the batch it makes. Quota
checks do not wait for it: the book holds each checked quantity as a reservation meanwhile."""

TUNABLES = (
    consumer_batch(LEDGER_GROUP, owner="billing", default=LEDGER_BATCH),
    consumer_linger(LEDGER_GROUP, owner="billing", default_ms=LEDGER_LINGER_MS),
)

"""The provenance service's tunables (the `hartonomous.tunables` entry point loads TUNABLES)."""

from __future__ import annotations

from hartonomous.tunables import consumer_batch, consumer_linger

GROUP = "provenance"
MAX_BATCH = 500
"""Records mapped and merged per graph transaction."""
LINGER_MS = 250
"""A graph transaction costs mostly by itself (each merge query is planned anew), so a short
batch waits this long to fill: on `hartonomous up`, a search's graph write cost ~12 ms of CPU
alone, competing with the next request's; the graph is that much later."""

TUNABLES = (
    consumer_batch(GROUP, owner="provenance", default=MAX_BATCH),
    consumer_linger(GROUP, owner="provenance", default_ms=LINGER_MS),
)

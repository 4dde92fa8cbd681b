"""The provenance service's tunables (the `hartonomous.tunables` entry point loads TUNABLES)."""

from __future__ import annotations

from hartonomous.tunables import consumer_batch

GROUP = "provenance"
MAX_BATCH = 500
"""Records mapped and merged per graph transaction."""

TUNABLES = (consumer_batch(GROUP, owner="provenance", default=MAX_BATCH),)

"""The search service's tunables (the `hartonomous.tunables` entry point loads TUNABLES)."""

from __future__ import annotations

from hartonomous.tunables import consumer_batch

GROUP = "search"
MAX_BATCH = 200
"""Records polled at a time (each is applied on its own: keyed upserts)."""

TUNABLES = (consumer_batch(GROUP, owner="search", default=MAX_BATCH),)

"""The ingest service's tunables (the `hartonomous.tunables` entry point loads TUNABLES)."""

from __future__ import annotations

from hartonomous.tunables import consumer_batch

CATALOG_GROUP = "ingest-catalog"
CATALOG_BATCH = 200
"""Atom events applied to the catalog per transaction."""

TUNABLES = (consumer_batch(CATALOG_GROUP, owner="ingest", default=CATALOG_BATCH),)

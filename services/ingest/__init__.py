"""ingest: content-addressed atoms, dedup, blobs, the catalog and text chunking (DESIGN.md §4).
`service` is what the `hartonomous.services` entry point loads."""

from services.ingest.service import IngestService

service = IngestService()

__all__ = ["IngestService", "service"]

"""ingest: content-addressed atoms, dedup, blobs, chunking (DESIGN.md §4). Not built yet: issue 4."""

"""ingest: content-addressed atoms, dedup, blobs, the catalog and text chunking (DESIGN.md §4).

Light on purpose: the entry points name modules inside the package (`service.py`,
`commands.py`, `tunables.py`), so reading a declaration never loads the whole service."""

"""search: chunks of every tenant's atoms projected into a vector store, queried by dense,
sparse (BM25) or hybrid search under a tenant filter the caller cannot remove (DESIGN.md §4).
`service` is what the `hartonomous.services` entry point loads."""

from services.search.service import SearchService

service = SearchService()

__all__ = ["SearchService", "service"]

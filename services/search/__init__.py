"""search: chunks of every tenant's atoms projected into a vector store, queried by dense,
sparse (BM25) or hybrid search under a tenant filter the caller cannot remove (DESIGN.md §4).

Light on purpose: the entry points name modules inside the package (`service.py`,
`commands.py`, `tunables.py`), so reading a declaration never loads the whole service."""

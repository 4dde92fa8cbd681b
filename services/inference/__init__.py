"""inference: embeddings with all-MiniLM-L6-v2 in JAX (DESIGN.md §4), over gRPC and for every
text atom and chunk on the log.

Light on purpose: the entry points name modules inside the package (`service.py`,
`commands.py`, `tunables.py`), so reading a declaration never loads the whole service."""

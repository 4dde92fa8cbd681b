"""The embedded vector store: one shard per tenant under the data dir, each an exact-search
matrix of its dense vectors (vectors.py), a BM25 index of its terms (keywords.py) and a SQLite
table of its points that says which of both are current (shard.py); EmbeddedStore (engine.py)
opens a tenant's shard on first use."""

"""search: vectors + BM25 projections and hybrid queries (DESIGN.md §4). Not built yet: issue 4."""

"""provenance: the log projected into a graph, lineage and audit (DESIGN.md §4). Not built yet: issue 6."""

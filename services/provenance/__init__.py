"""provenance: every domain event projected into a graph; lineage, explain and audit
(DESIGN.md §4).

Light on purpose: the entry points name modules inside the package (`service.py`,
`commands.py`, `tunables.py`), so reading a declaration never loads the whole service."""

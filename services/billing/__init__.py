"""billing: the usage ledger, rate cards, quotas and invoices (DESIGN.md §4).

Light on purpose: the entry points name modules inside the package (`service.py`,
`commands.py`, `tunables.py`), so reading a declaration never loads the whole service."""

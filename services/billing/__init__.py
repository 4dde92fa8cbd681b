"""billing: usage ledger, rate cards, quotas, invoices (DESIGN.md §4). Not built yet: issue 7."""

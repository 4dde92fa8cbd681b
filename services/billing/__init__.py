"""billing: the usage ledger, rate cards, quotas and invoices (DESIGN.md §4).
`service` is what the `hartonomous.services` entry point loads."""

from services.billing.service import BillingService

service = BillingService()

__all__ = ["BillingService", "service"]

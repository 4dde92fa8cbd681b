"""provenance: every domain event projected into a graph; lineage, explain and audit
(DESIGN.md §4). `service` is what the `hartonomous.services` entry point loads, `command` what
the `hartonomous.commands` entry point loads (`hartonomous audit ...`)."""

from services.provenance.commands import AuditCommand
from services.provenance.service import ProvenanceService

service = ProvenanceService()
command = AuditCommand()

__all__ = ["AuditCommand", "ProvenanceService", "command", "service"]

"""What the caller is told, by type (the API maps each to a status)."""

from __future__ import annotations


class IngestError(ValueError):
    """What the caller is told, by type (the API maps each to a status)."""


class InvalidArgument(IngestError):
    pass


class ContentTooLarge(IngestError):
    pass


class AlreadyExists(IngestError):
    pass


class FailedPrecondition(IngestError):
    """The request names something the caller holds, but not in a state that allows it."""


class AtomNotFound(IngestError):
    """The same answer whether the atom does not exist or is another tenant's: ids reveal
    nothing across tenants."""

    def __init__(self, tenant_id: str, atom_id: str) -> None:
        super().__init__(f"tenant {tenant_id} holds no atom {atom_id}")


class ModelVersionNotFound(IngestError):
    def __init__(self, tenant_id: str, name: str, version: str) -> None:
        super().__init__(f"tenant {tenant_id} has no version {version!r} of model {name!r}")


class ModelNotFound(IngestError):
    def __init__(self, tenant_id: str, name: str) -> None:
        super().__init__(f"tenant {tenant_id} has no model {name!r}")


class ModelFileDamaged(IngestError):
    """A version's rebuilt file does not match what was ingested (the details are logged)."""

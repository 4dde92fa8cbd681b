"""The one rule for a tenant id, checked where a request enters any service."""

from __future__ import annotations

MAX_TENANT_ID_CHARS = 128


class InvalidTenantId(ValueError):
    """A caller's mistake: every service reports it as an invalid argument."""


def parse_tenant_id(raw: str) -> str:
    """The tenant id without surrounding white space: required, at most 128 printable
    characters."""
    tenant = raw.strip()
    if not tenant:
        raise InvalidTenantId("tenant_id is required")
    if len(tenant) > MAX_TENANT_ID_CHARS or not tenant.isprintable():
        raise InvalidTenantId(
            f"tenant_id must be at most {MAX_TENANT_ID_CHARS} printable characters"
        )
    return tenant

"""The key-store port: one AES-256 data key per tenant, made on first use, destroyed once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


class TenantErasedError(Exception):
    """The tenant's data key was destroyed: nothing can be sealed for it any more."""

    def __init__(self, tenant_id: str) -> None:
        super().__init__(f"tenant {tenant_id} was erased: its data key is destroyed")
        self.tenant_id = tenant_id


@dataclass(frozen=True)
class DataKey:
    key_id: str
    secret: bytes


class KeyStore(Protocol):
    async def current(self, tenant_id: str) -> DataKey:
        """The key to seal with, made on first use; TenantErasedError once destroyed."""
        ...

    async def find(self, key_id: str) -> tuple[str, DataKey | None] | None:
        """The tenant a sealed value's key belongs to, and the key (None once destroyed); None
        for a key this store never made."""
        ...

    async def destroy(self, tenant_id: str) -> bool:
        """Destroy the tenant's keys for good (and refuse to make new ones); False when there
        was nothing left to destroy."""
        ...

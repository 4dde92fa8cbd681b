"""Sealing a field value: AES-256-GCM under the tenant's data key, bound to the tenant (the
tenant id is the associated data, so a sealed value copied into another tenant's event does not
open), written as text so a sealed field keeps its Avro type:

    sealed:v1:<key id>:<base64url(12-byte nonce + ciphertext + 16-byte tag)>

A value without the prefix is clear text written before sealing existed, and opens as itself."""

from __future__ import annotations

import base64
import binascii
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hartonomous.sealing.port import DataKey, KeyStore

PREFIX = "sealed:v1:"
ERASED = "[erased]"
"""How tools that print events show a value whose key was destroyed."""

KEY_CACHE_SECONDS = 30.0
"""How long a key read from the store is used without asking again: a key destroyed by another
process stops opening values here within this time (an erasure also calls `forget`)."""

MAX_CACHED_KEYS = 10_000
"""Keys a sealer holds at most (per kind: current by tenant, found by key id), the least
recently used dropped first: a platform of many tenants does not grow a key per tenant."""

_NONCE_BYTES = 12


class SealedValueError(ValueError):
    """A sealed value that is malformed, tampered with, or sealed for another tenant."""


def is_sealed(value: str) -> bool:
    return value.startswith(PREFIX)


class Sealer:
    def __init__(
        self,
        keys: KeyStore,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_cached: int = MAX_CACHED_KEYS,
    ) -> None:
        self._keys = keys
        self._clock = clock
        self._current: _Cache[str, tuple[float, DataKey]] = _Cache(max_cached)
        self._found: _Cache[str, tuple[float, tuple[str, DataKey | None] | None]] = _Cache(
            max_cached
        )

    @property
    def keys(self) -> KeyStore:
        return self._keys

    async def seal(self, tenant_id: str, value: str) -> str:
        """Raises TenantErasedError once the tenant's key is destroyed."""
        key = await self._current_key(tenant_id)
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(key.secret).encrypt(nonce, value.encode(), tenant_id.encode())
        token = base64.urlsafe_b64encode(nonce + sealed).decode()
        return f"{PREFIX}{key.key_id}:{token}"

    async def seal_optional(self, tenant_id: str, value: str | None) -> str | None:
        return None if value is None else await self.seal(tenant_id, value)

    async def open(self, tenant_id: str, value: str) -> str | None:
        """The clear value; None when its key was destroyed (the value is erased)."""
        if not is_sealed(value):
            return value
        key_id, _, token = value[len(PREFIX) :].partition(":")
        try:
            raw = base64.b64decode(token.encode(), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise SealedValueError("a sealed value's token is not base64url") from None
        if not key_id or len(raw) < _NONCE_BYTES + 16:
            raise SealedValueError("a sealed value is truncated")
        found = await self._find_key(key_id)
        if found is None:
            raise SealedValueError(
                f"a sealed value names key {key_id}, which this store never made"
            )
        owner, key = found
        if owner != tenant_id:
            raise SealedValueError(f"a value sealed for another tenant was read as {tenant_id}'s")
        if key is None:
            return None
        try:
            clear = AESGCM(key.secret).decrypt(
                raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], tenant_id.encode()
            )
        except InvalidTag:
            raise SealedValueError(
                f"a sealed value does not open with tenant {tenant_id}'s key: tampered with,"
                " or sealed for another tenant"
            ) from None
        return clear.decode()

    async def open_optional(self, tenant_id: str, value: str | None) -> str | None:
        return None if value is None else await self.open(tenant_id, value)

    def forget(self, tenant_id: str) -> None:
        """Drop the tenant's cached keys: it was erased."""
        self._current.drop(lambda tenant, _: tenant != tenant_id)
        self._found.drop(lambda _, cached: not (cached[1] and cached[1][0] == tenant_id))

    async def _current_key(self, tenant_id: str) -> DataKey:
        now = self._clock()
        cached = self._current.get(tenant_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        key = await self._keys.current(tenant_id)
        self._current.put(tenant_id, (now + KEY_CACHE_SECONDS, key))
        return key

    async def _find_key(self, key_id: str) -> tuple[str, DataKey | None] | None:
        now = self._clock()
        cached = self._found.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        found = await self._keys.find(key_id)
        # A destroyed key never comes back, so that is cached for good.
        destroyed = found is not None and found[1] is None
        self._found.put(key_id, (float("inf") if destroyed else now + KEY_CACHE_SECONDS, found))
        return found


K = TypeVar("K")
V = TypeVar("V")


class _Cache(Generic[K, V]):
    """At most `size` entries; a read or a write makes an entry the most recently used."""

    def __init__(self, size: int) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._size = size

    def get(self, key: K) -> V | None:
        if key not in self._entries:
            return None
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def drop(self, keep: Callable[[K, V], bool]) -> None:
        """Remove the entries `keep` says no to."""
        for key in [k for k, v in self._entries.items() if not keep(k, v)]:
            del self._entries[key]

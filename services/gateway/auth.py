"""Who is calling: `Authorization: Bearer <key>` → a Principal (key, tenant, role).

The tenant always comes from the key, never from anything else in the request. Key rows are
cached for a few seconds (GatewayConfig.key_cache_seconds) so a request costs no database
trip; the secret is still checked against the cached hash on every request."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from services.gateway import keys
from services.gateway.keys import Role
from services.gateway.store import KeyRecord, KeyStore

_CACHE_LIMIT = 10_000

CHALLENGE = {"WWW-Authenticate": 'Bearer realm="hartonomous"'}


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant_id: str
    role: Role


class Unauthenticated(Exception):
    """No key, a malformed one, an unknown or revoked one, or a wrong secret."""


class Authenticator:
    def __init__(
        self, store: KeyStore, ttl: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._store = store
        self._ttl = ttl
        self._clock = clock
        self._cache: dict[str, tuple[float, KeyRecord | None]] = {}

    async def authenticate(self, presented: str) -> Principal:
        parsed = keys.parse(presented)
        if parsed is None:
            raise Unauthenticated("the API key is malformed")
        key_id, secret = parsed
        record = await self._record(key_id)
        # The same answer for every failure: a caller learns nothing about which keys exist.
        if record is None or record.revoked_at is not None:
            raise Unauthenticated("the API key is not valid")
        if not keys.verify(secret, record.salt, record.secret_hash):
            raise Unauthenticated("the API key is not valid")
        return Principal(record.key_id, record.tenant_id, record.role)

    async def _record(self, key_id: str) -> KeyRecord | None:
        now = self._clock()
        cached = self._cache.get(key_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        record = await self._store.key(key_id)
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
        self._cache[key_id] = (now + self._ttl, record)
        return record

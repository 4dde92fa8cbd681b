"""API keys and roles: pure logic, no I/O.

A key reads `hk_<key_id>_<secret>`. Only the key id (to find the row) and a salted SHA-256 of
the secret are stored, so the key itself is shown once, at creation. The secret is 256 random
bits, so a fast hash is enough (a slow one like scrypt protects low-entropy passwords, and
would cost every request tens of milliseconds); comparison is constant-time."""

from __future__ import annotations

import enum
import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PREFIX = "hk"
_KEY = re.compile(rf"{PREFIX}_([0-9a-f]{{16}})_([A-Za-z0-9_-]{{43}})")
TENANT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Role(enum.StrEnum):
    """Each role may do what the one before it may, and more:
    reader reads atoms, searches and sees usage and invoices; writer also ingests and
    embeds; admin also sets rate cards and quotas (platform-wide: mint admin keys with care)."""

    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"

    def allows(self, needed: Role) -> bool:
        order = list(Role)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class NewKey:
    """A freshly minted key: `secret_key` is what the client sends, the rest is stored."""

    key_id: str
    secret_key: str
    salt: bytes
    secret_hash: bytes


def mint() -> NewKey:
    key_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    salt = secrets.token_bytes(16)
    return NewKey(key_id, f"{PREFIX}_{key_id}_{secret}", salt, _hash(salt, secret))


def parse(presented: str) -> tuple[str, str] | None:
    """(key_id, secret) of a well-formed key, else None."""
    match = _KEY.fullmatch(presented)
    return (match.group(1), match.group(2)) if match else None


def verify(secret: str, salt: bytes, secret_hash: bytes) -> bool:
    return hmac.compare_digest(_hash(salt, secret), secret_hash)


def valid_tenant_name(name: str) -> bool:
    return TENANT_NAME.fullmatch(name) is not None


def _hash(salt: bytes, secret: str) -> bytes:
    return hashlib.sha256(salt + secret.encode()).digest()

"""Event ids: UUIDv7 (RFC 9562), so ids sort by creation time; random ones for new events, and
ones derived from a name for events that may be appended more than once."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import uuid
from collections.abc import Callable

_RAND_BITS = 74  # rand_a (12) + rand_b (62)
_RAND_B_BITS = 62
_MAX_STEP_BITS = 32


class UuidV7Generator:
    """Monotonic UUIDv7 source (RFC 9562 §6.2, method 2): the random field counts up within a
    millisecond by a random step, so ids from one process strictly increase yet stay unguessable."""

    def __init__(self, clock_ns: Callable[[], int] = time.time_ns) -> None:
        self._clock_ns = clock_ns
        self._lock = threading.Lock()
        self._ms = -1
        self._rand = 0

    def __call__(self) -> str:
        with self._lock:
            ms = self._clock_ns() // 1_000_000
            if ms > self._ms:
                # Top bit clear: leaves room to count up inside this millisecond.
                self._ms, self._rand = ms, secrets.randbits(_RAND_BITS - 1)
            else:
                # Same millisecond, or the clock stepped back: continue from the last id.
                self._rand += 1 + secrets.randbits(_MAX_STEP_BITS)
                if self._rand >> _RAND_BITS:
                    self._ms, self._rand = self._ms + 1, secrets.randbits(_RAND_BITS - 1)
            ms, rand = self._ms, self._rand
        return _uuid7(ms, rand)


def _uuid7(ms: int, rand: int) -> str:
    """The UUIDv7 of a Unix time in milliseconds and 74 random bits."""
    value = (
        ms << 80
        | 0x7 << 76
        | (rand >> _RAND_B_BITS) << 64
        | 0b10 << 62
        | rand & ((1 << _RAND_B_BITS) - 1)
    )
    return str(uuid.UUID(int=value))


_generator = UuidV7Generator()


def new_event_id() -> str:
    """A new UUIDv7 event id as a canonical lowercase string."""
    return _generator()


def named_event_id(unix_ms: int, name: str) -> str:
    """A UUIDv7 that is a function of a time and a name: its random bits are a hash of the name.

    For events that may be appended more than once (a re-delivered cause, a restart, a second
    replica doing the same work): every copy gets the same id, so the billing ledger (keyed by
    event id) counts it once. The name must say everything that makes the event unique.
    """
    digest = int.from_bytes(hashlib.sha256(name.encode()).digest()[:10])
    return _uuid7(unix_ms, digest & ((1 << _RAND_BITS) - 1))


def derived_event_id(cause_id: str, name: str) -> str:
    """The id of what an event caused, a function of the cause's id and what was derived
    (`name`), so handling the cause twice (consumers are at-least-once) yields the same ids.
    The timestamp bits are the cause's, so the id still sorts where a fresh one would."""
    try:
        unix_ms = uuid.UUID(cause_id).int >> 80
    except ValueError:  # a producer that is not ours: no creation time to keep
        unix_ms = 0
    return named_event_id(unix_ms, f"{cause_id}\0{name}")

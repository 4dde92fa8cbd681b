"""Event ids: UUIDv7 (RFC 9562), so ids sort by creation time."""

from __future__ import annotations

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

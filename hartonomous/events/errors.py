"""The two ways an event can fail to cross the wire."""

from __future__ import annotations


class EventEncodeError(ValueError):
    """A payload does not fit its event type's schema (or the event type is unknown)."""


class EventDecodeError(Exception):
    """Bytes or headers that cannot be turned back into an event: truncated, garbage, wrong magic,
    unknown writer fingerprint, unresolvable against the reader schema, or missing envelope headers.
    Consumers route such records to the dead-letter topic instead of stalling the partition."""

"""The control plane's rules, free of I/O: what a valid change request is, and where an
effective value came from."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hartonomous.tunables import InvalidSetting, Tunable

MAX_REASON_CHARS = 2000
DEFAULT_HISTORY = 100
MAX_HISTORY = 1000


class InvalidRequest(ValueError):
    """A request the caller has to fix."""


@dataclass(frozen=True)
class Change:
    """One ConfigChanged as the control plane keeps it."""

    key: str
    old_value: str | None
    new_value: str
    actor: str
    reason: str
    changed_at: datetime
    event_id: str


def source_of(actor: str | None) -> str:
    """ "default" (never changed), "ooda" (the loop: its decisions and rollbacks) or
    "operator" (anyone else: an admin's API key, the CLI)."""
    if actor is None:
        return "default"
    return "ooda" if actor.startswith("ooda:") else "operator"


def checked_change(tunable: Tunable, raw: str, reason: str, actor: str) -> str:
    """The canonical text of a requested value, or InvalidRequest naming the problem."""
    try:
        value = tunable.text(tunable.parse(raw))
    except InvalidSetting as exc:
        raise InvalidRequest(str(exc)) from None
    if not reason.strip():
        raise InvalidRequest("a change needs a reason (it is kept with the change, forever)")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidRequest(f"the reason is over {MAX_REASON_CHARS} characters")
    if not actor.strip():
        raise InvalidRequest("a change needs an actor")
    return value


def history_limit(limit: int) -> int:
    if not 0 <= limit <= MAX_HISTORY:
        raise InvalidRequest(f"limit must be in [0, {MAX_HISTORY}] (0 means {DEFAULT_HISTORY})")
    return limit or DEFAULT_HISTORY

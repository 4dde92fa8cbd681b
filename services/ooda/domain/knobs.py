"""The knobs as the control topic tells them: each key's effective value and the changes that
led there, with who made them and when. Every stage that must not fight an operator (orient,
decide, act) keeps one, fed from `control`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from hartonomous.events.payloads import ConfigChanged
from hartonomous.tunables import Tunable, Value


@dataclass(frozen=True)
class KnobChange:
    old_value: str | None
    new_value: str
    actor: str
    at: datetime

    @property
    def by_operator(self) -> bool:
        return self.actor.startswith("user:")

    @property
    def by_loop(self) -> bool:
        return self.actor.startswith("ooda:")


class Knobs:
    def __init__(self, tunables: Mapping[str, Tunable]) -> None:
        self.tunables = tunables
        self._history: dict[str, list[KnobChange]] = {}

    def apply(self, change: ConfigChanged, at: datetime) -> None:
        self._history.setdefault(change.key, []).append(
            KnobChange(change.old_value, change.new_value, change.actor, at)
        )

    def text(self, key: str) -> str:
        """The effective value, as text: the last change's, or the default."""
        history = self._history.get(key)
        return (
            history[-1].new_value
            if history
            else self.tunables[key].text(self.tunables[key].default)
        )

    def value(self, key: str) -> Value:
        return self.tunables[key].parse(self.text(key))

    def last(self, key: str) -> KnobChange | None:
        history = self._history.get(key)
        return history[-1] if history else None

    def changes_since(self, key: str, since: datetime) -> list[KnobChange]:
        return [c for c in self._history.get(key, ()) if c.at >= since]

    def held_by_operator(self, key: str, hold: timedelta, now: datetime) -> KnobChange | None:
        """The operator's change that keeps the loop's hands off `key` now, if any."""
        last = self.last(key)
        if last is not None and last.by_operator and now - last.at < hold:
            return last
        return None

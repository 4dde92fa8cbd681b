"""Tunables: the knobs of the running platform, declared as data, changed only through the log.

Every service declares its tunables in its `tunables.py` (registered under the
`hartonomous.tunables` entry point group): key, kind, bounds, default, risk class, owning
service and coupled group. A change is a ConfigChanged on `control` (with actor and reason);
every process follows `control` and applies the changes to the keys it holds, live, so every
replica converges on the log's values. `LiveConfig` is that per-process state: effective
values, where each came from, and the callbacks that retune the running code.
"""

from __future__ import annotations

import enum
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from hartonomous.entrypoints import load_entry_points

logger = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "hartonomous.tunables"

Value = int | float | bool | str


class Risk(enum.StrEnum):
    """How much a wrong value can hurt: the autonomous loop applies low-risk changes itself
    (in `auto` mode) and waits for an admin's approval of the others."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class Kind(enum.StrEnum):
    INT = "int"
    FLOAT = "float"
    BOOL = "bool"
    CHOICE = "choice"


class InvalidSetting(ValueError):
    """A value a tunable does not take (not of its kind, out of its bounds, not a choice)."""


class UnknownSetting(LookupError):
    """No tunable has this key."""


@dataclass(frozen=True)
class Tunable:
    key: str
    kind: Kind
    default: Value
    description: str
    owner: str  # the service that holds it and applies changes
    group: str  # coupled knobs share a group: the loop changes one of a group at a time
    risk: Risk = Risk.LOW
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    autonomous: bool = True
    """False: only an operator changes it (the loop's own settings)."""

    def __post_init__(self) -> None:
        self.parse(str(self.default))  # a default outside its own bounds is a declaration bug

    def parse(self, raw: str) -> Value:
        """The value `raw` (text, as ConfigChanged carries it) stands for, or InvalidSetting."""
        text = raw.strip()
        if self.kind is Kind.BOOL:
            if text.lower() not in ("true", "false"):
                raise InvalidSetting(f"{self.key} is true or false, not {raw!r}")
            return text.lower() == "true"
        if self.kind is Kind.CHOICE:
            if text not in self.choices:
                raise InvalidSetting(f"{self.key} is one of {', '.join(self.choices)}, not {raw!r}")
            return text
        number = self._number(text, raw)
        if self.minimum is not None and number < self.minimum:
            raise InvalidSetting(f"{self.key} must be at least {_plain(self.minimum)}, got {raw}")
        if self.maximum is not None and number > self.maximum:
            raise InvalidSetting(f"{self.key} must be at most {_plain(self.maximum)}, got {raw}")
        return number

    def text(self, value: Value) -> str:
        """The canonical text of a value (what ConfigChanged carries)."""
        if isinstance(value, bool):
            return "true" if value else "false"
        return _plain(value) if isinstance(value, float) else str(value)

    def _number(self, text: str, raw: str) -> int | float:
        try:
            number = int(text) if self.kind is Kind.INT else float(text)
        except ValueError:
            raise InvalidSetting(
                f"{self.key} is {'an integer' if self.kind is Kind.INT else 'a number'}, not {raw!r}"
            ) from None
        if isinstance(number, float) and not math.isfinite(number):
            raise InvalidSetting(f"{self.key} must be finite, got {raw!r}")
        return number


def _plain(number: float | int) -> str:
    """1.0 -> "1", 2.5 -> "2.5": numbers as a person writes them."""
    return f"{number:g}" if isinstance(number, float) else str(number)


def consumer_batch(group: str, owner: str, default: int) -> Tunable:
    """The batch size of a projection's consumer group: records applied per transaction."""
    return Tunable(
        key=f"{group}.consumer.max_batch",
        kind=Kind.INT,
        default=default,
        minimum=1,
        maximum=10_000,
        description=f"Records the {group} projection polls and applies per transaction",
        owner=owner,
        group=f"{group}.consumer",
    )


def consumer_linger(group: str, owner: str, default_ms: int) -> Tunable:
    """How long a projection's short batch waits to fill: fewer, larger transactions (where
    each costs mostly by itself, as a graph write does) for that much freshness."""
    return Tunable(
        key=f"{group}.consumer.linger_ms",
        kind=Kind.INT,
        default=default_ms,
        minimum=0,
        maximum=5_000,
        description=f"Milliseconds the {group} projection waits for a short batch to fill",
        owner=owner,
        group=f"{group}.consumer",
    )


KERNEL_TUNABLES = (
    Tunable(
        key="telemetry.interval_s",
        kind=Kind.FLOAT,
        default=5.0,
        minimum=1.0,
        maximum=300.0,
        description="Seconds of each telemetry window a process publishes",
        owner="*",
        group="telemetry",
        risk=Risk.MEDIUM,
    ),
)
"""Tunables every process holds (owner "*")."""


def catalog() -> dict[str, Tunable]:
    """Every tunable of the platform, by key: the kernel's and every service's declarations."""
    found = {t.key: t for t in KERNEL_TUNABLES}
    declared: dict[str, tuple[Tunable, ...]] = load_entry_points(ENTRY_POINT_GROUP, tuple)
    for name, tunables in declared.items():
        for tunable in tunables:
            if tunable.key in found:
                raise ValueError(f"tunable {tunable.key} is declared twice ({name})")
            found[tunable.key] = tunable
    return dict(sorted(found.items()))


@dataclass(frozen=True)
class Setting:
    """A tunable's effective value and where it came from (None: its default)."""

    tunable: Tunable
    value: Value
    actor: str | None = None
    reason: str | None = None
    changed_at: datetime | None = None


Watcher = Callable[[Value], Awaitable[None] | None]


class LiveConfig:
    """One process's view of the control topic: the effective value of every tunable, and
    the callbacks that apply a change to the running code."""

    def __init__(self, tunables: Mapping[str, Tunable], held: Iterable[str] = ()) -> None:
        self._settings = {k: Setting(t, t.parse(str(t.default))) for k, t in tunables.items()}
        self._watchers: dict[str, list[Watcher]] = {}
        self._held = set(held)

    def tunable(self, key: str) -> Tunable:
        try:
            return self._settings[key].tunable
        except KeyError:
            raise UnknownSetting(f"no tunable {key!r}") from None

    def value(self, key: str) -> Value:
        return self.setting(key).value

    def setting(self, key: str) -> Setting:
        self.tunable(key)
        return self._settings[key]

    def settings(self) -> list[Setting]:
        return list(self._settings.values())

    def watch(self, key: str, apply: Watcher) -> Value:
        """Call `apply` with every later change of `key`; returns its value now. Watching a
        key is holding it: its effective value is part of this process's telemetry."""
        self.tunable(key)
        self._watchers.setdefault(key, []).append(apply)
        self._held.add(key)
        return self.value(key)

    def held(self) -> dict[str, str]:
        """Key -> effective value (as text) of every tunable this process holds."""
        return {
            k: self._settings[k].tunable.text(self._settings[k].value) for k in sorted(self._held)
        }

    async def change(self, key: str, raw: str, actor: str, reason: str, at: datetime) -> bool:
        """Apply one ConfigChanged; False (logged) when the key or value is not valid here,
        which is the publisher's mistake, never a reason to stop following the log."""
        try:
            tunable = self.tunable(key)
            value = tunable.parse(raw)
        except (UnknownSetting, InvalidSetting) as exc:
            logger.warning("ignored a configuration change", extra={"key": key, "error": str(exc)})
            return False
        before = self._settings[key].value
        self._settings[key] = Setting(tunable, value, actor, reason, at)
        if value != before:
            for apply in self._watchers.get(key, ()):
                applied = apply(value)
                if inspect.isawaitable(applied):
                    await applied
        return True

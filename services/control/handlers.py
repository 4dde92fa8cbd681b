"""The control commands (shared by the gRPC API and, through it, the CLI and the gateway) and
the projection of the `control` topic.

SetConfig validates against the tunable's declaration before anything is appended, so an
unknown key or a value out of bounds never reaches the log; it then publishes the
ConfigChanged (with the value it replaces) and records it at once (read-your-writes). The
projection records every change again, and those published by anyone else: keyed by event
id, so it converges on the log whatever applies first.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hartonomous.events import Event
from hartonomous.events.payloads import ConfigChanged, Payload
from hartonomous.runtime.projection import Handler, Projection
from hartonomous.runtime.publisher import Publisher
from hartonomous.tunables import Setting, Tunable, UnknownSetting
from services.control import domain
from services.control.domain import Change
from services.control.store import ChangeWriter, ControlStore

GROUP = "control"


@dataclass(frozen=True)
class Deps:
    store: ControlStore
    publisher: Publisher
    tunables: Mapping[str, Tunable]

    def tunable(self, key: str) -> Tunable:
        try:
            return self.tunables[key]
        except KeyError:
            raise UnknownSetting(f"no tunable {key!r}") from None


# ---------------------------------------------------------------------------------------
# Commands


async def settings(deps: Deps, key: str = "") -> list[Setting]:
    """Every tunable's (or one's) effective value and where it came from."""
    chosen = [deps.tunable(key)] if key else list(deps.tunables.values())
    current = await deps.store.current()
    return [_setting(tunable, current.get(tunable.key)) for tunable in chosen]


async def set_config(deps: Deps, key: str, raw: str, reason: str, actor: str) -> Setting:
    tunable = deps.tunable(key)
    value = domain.checked_change(tunable, raw, reason, actor)
    before = (await deps.store.current()).get(key)
    old = before.new_value if before is not None else tunable.text(tunable.default)
    change = ConfigChanged(key=key, old_value=old, new_value=value, reason=reason, actor=actor)
    event = deps.publisher.new(change, tenant_id="platform")
    [position] = await deps.publisher.publish(event)
    recorded = _change(event)
    async with deps.store.transaction() as tx:
        await tx.record(recorded, position.offset)
    return _setting(tunable, recorded)


async def history(deps: Deps, key: str, limit: int) -> list[Change]:
    deps.tunable(key)
    return await deps.store.history(key, domain.history_limit(limit))


def _setting(tunable: Tunable, change: Change | None) -> Setting:
    if change is None:
        return Setting(tunable, tunable.default)
    return Setting(
        tunable, tunable.parse(change.new_value), change.actor, change.reason, change.changed_at
    )


def _change(event: Event[ConfigChanged]) -> Change:
    change = event.payload
    return Change(
        change.key,
        change.old_value,
        change.new_value,
        change.actor,
        change.reason,
        event.envelope.occurred_at,
        event.envelope.event_id,
    )


# ---------------------------------------------------------------------------------------
# The projection


async def on_config_changed(tx: ChangeWriter, event: Event[ConfigChanged]) -> None:
    await tx.record(_change(event), event.logged.offset)


HANDLERS: Mapping[type[Payload], Handler[ChangeWriter]] = {ConfigChanged: on_config_changed}


def control_projection(store: ControlStore) -> Projection[ChangeWriter]:
    """Every change, keyed by event id: re-applying one changes nothing."""
    return Projection(GROUP, ["control"], HANDLERS, store.transaction)

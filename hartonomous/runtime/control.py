"""Every process follows `control`, so a change reaches every replica of every service.

The follower is a projection of `control` into the process's LiveConfig, under a consumer
group of the process's own (each instance must see every change, where a shared group would
hand each change to one member only), read from the start: at boot it brings the process to
the log's values before its services open, and afterwards it applies each change live.
"""

from __future__ import annotations

import os
import socket
import uuid

from hartonomous.events import Event
from hartonomous.events.payloads import ConfigChanged
from hartonomous.runtime.projection import Projection
from hartonomous.tunables import LiveConfig

CONTROL_TOPIC = "control"
FOLLOWER_GROUP = "control-follower"


def new_instance_id() -> str:
    """This process among the replicas: its host, pid and a random suffix (a restart is a new
    instance, whose telemetry starts a series of its own)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def on_config_changed(config: LiveConfig, event: Event[ConfigChanged]) -> None:
    change = event.payload
    if change.scope is None:  # scoped changes (a canary) are for whoever the scope names
        await config.change(
            change.key, change.new_value, change.actor, change.reason, event.envelope.occurred_at
        )


def follower(config: LiveConfig, instance: str) -> Projection[LiveConfig]:
    return Projection.one_at_a_time(
        f"{FOLLOWER_GROUP}.{instance}",
        [CONTROL_TOPIC],
        {ConfigChanged: on_config_changed},
        config,
    )

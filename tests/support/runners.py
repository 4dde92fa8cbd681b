"""Running a projection in a test: a one-record-at-a-time runner, and running it until a
condition holds."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from hartonomous.eventlog.port import EventLog
from hartonomous.events import AvroCodec
from hartonomous.events.payloads import UsageRecorded
from hartonomous.runtime.projection import Handler, Projection, ProjectionRunner, RetryPolicy


def one_at_a_time(
    eventlog: EventLog, group: str, topic: str, handler: Handler[None], attempts: int = 4
) -> ProjectionRunner[None]:
    """A runner of a projection that applies each record on its own (no transaction)."""
    projection = replace(
        Projection.one_at_a_time(group, [topic], {UsageRecorded: handler}, None),
        retry=RetryPolicy(attempts=attempts, first_backoff=0.01),
    )
    return ProjectionRunner(eventlog, AvroCodec(), projection)


async def run_until(
    runner: ProjectionRunner[Any], done: Callable[[], bool | Awaitable[bool]]
) -> None:
    """Run the projection until `done` holds (a check, or one to await), for 60 s at most."""
    task = asyncio.create_task(runner.run())
    try:
        async with asyncio.timeout(60):
            while not await _holds(done()):  # noqa: ASYNC110 (the log offers no event to wait on)
                await asyncio.sleep(0.1)
    finally:
        runner.stop()
        await task


async def _holds(check: bool | Awaitable[bool]) -> bool:
    return await check if inspect.isawaitable(check) else check

"""The search projection's recovery path: replay its topics from the start through the same
handlers the consumer runs. Join rows are keyed upserts and points are keyed writes, so a replay
over a projection that has some or all of it converges on the same points; a store that lost
its files, a new engine, or a join-state schema of another version all come back this way."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from hartonomous.eventlog.port import EventLog
from hartonomous.events import AvroCodec, EventDecodeError, decode_event
from hartonomous.runtime.consumer import PoisonEvent
from services.search.handlers import Deps, consumer_handler

logger = logging.getLogger(__name__)

PROGRESS_EVERY = 5.0  # seconds between progress lines


@dataclass
class Rebuilt:
    records: int = 0
    rejected: int = 0  # undecodable or unprojectable: the live consumer dead-lettered them


async def rebuild(log: EventLog, codec: AvroCodec, deps: Deps, topics: Sequence[str]) -> Rebuilt:
    """Project every record of `topics` up to their current ends."""
    handle = consumer_handler(deps)
    done = Rebuilt()
    started = reported = time.monotonic()
    for topic in topics:
        async for record in log.replay(topic, from_offset=0):
            try:
                await handle(decode_event(codec, record), record)
            except (EventDecodeError, PoisonEvent):
                done.rejected += 1
            done.records += 1
            if time.monotonic() - reported >= PROGRESS_EVERY:
                reported = time.monotonic()
                logger.info(
                    "rebuilding the search index: %d records replayed (%s)",
                    done.records,
                    topic,
                    extra={"records": done.records, "topic": topic},
                )
    logger.info(
        "search index rebuilt from the log: %d records in %.1f s (%d rejected)",
        done.records,
        time.monotonic() - started,
        done.rejected,
    )
    return done

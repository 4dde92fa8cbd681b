"""The search service's tunables changed live on a running platform (a ConfigChanged on
`control`, followed by the process), seen where the loop sees them: the telemetry windows it
publishes, and the usage inference bills.

- `search.query_cache.size`: a repeated dense query takes its vector from the cache, so
  inference is neither called nor bills Embed tokens; 0 turns the cache off again.
- `search.compaction.min_dead`: a lower threshold compacts the embedded store's dead slots at
  its next write."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

from hartonomous.blobs import open_blob_store
from hartonomous.events.payloads import TelemetryRecorded, UsageRecorded
from hartonomous.runtime.windows import TelemetryEmitter
from hartonomous.settings import Settings
from hartonomous.v1 import search_pb2, search_pb2_grpc
from services.inference.models.minilm import MiniLM
from services.inference.service import InferenceService, WarmupPlan
from services.search.service import SearchService
from services.search.tunables import COMPACTION_MIN_DEAD, QUERY_CACHE_SIZE
from tests.support.harness import Harness, running, set_tunable
from tests.support.search_corpus import package_docs
from tests.support.search_projection import (
    A,
    B,
    chunked,
    embeddings_of,
    ingested,
    random_embeddings,
    referenced,
    store_blob,
)

EMBED = "hartonomous.v1.Inference/Embed"


async def until(done: Callable[[], object], timeout: float = 10.0) -> None:
    async with asyncio.timeout(timeout):
        while not done():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


async def retune(h: Harness, key: str, value: int) -> None:
    """Set a tunable on the log and wait until this process's follower applied it."""
    await set_tunable(h.event_log, key, str(value))
    await until(lambda: h.ctx.config.value(key) == value)


async def window(h: Harness) -> TelemetryRecorded:
    """Close the telemetry window and publish it, as the process does every interval."""
    await asyncio.sleep(0.1)  # the server counts a call once it is done on its side
    await TelemetryEmitter(h.ctx.telemetry, h.ctx.publisher("telemetry"), h.ctx.config).publish()
    latest = (await h.events("telemetry"))[-1].payload
    assert isinstance(latest, TelemetryRecorded)
    return latest


def gauges(recorded: TelemetryRecorded) -> dict[str, float]:
    return {g.name: g.value for g in recorded.gauges if g.name.startswith("search_")}


def embed_calls(recorded: TelemetryRecorded) -> int:
    return sum(o.requests for o in recorded.operations if o.operation == EMBED)


async def billed_embeds(h: Harness) -> list[str]:
    """The tenants inference billed Embed tokens to, in order."""
    usage = [e.payload for e in await h.events("usage")]
    return [u.tenant_id for u in usage if isinstance(u, UsageRecorded) and u.operation == "embed"]


async def test_a_repeated_query_is_answered_from_the_cache_while_it_is_on(
    model: MiniLM, pg_url: str, tmp_path: Path
) -> None:
    inference = InferenceService(
        model=model, warmup=WarmupPlan(max_rows=0, cache=False), generation=None
    )
    settings = Settings(data_dir=tmp_path)
    async with running(inference, SearchService(), pg_url=pg_url, settings=settings) as h:
        stub = search_pb2_grpc.SearchStub(h.channel)

        async def dense(tenant: str, text: str) -> None:
            mode = search_pb2.SEARCH_MODE_DENSE
            await stub.Search(search_pb2.SearchRequest(tenant_id=tenant, query=text, mode=mode))

        await window(h)  # a window of its own for what follows
        await retune(h, QUERY_CACHE_SIZE, 64)
        await dense(A, "fast avro files")
        await dense(A, "fast avro files")  # the same tenant's same query: from the cache
        await dense(B, "fast avro files")  # another tenant never shares A's entry
        assert await billed_embeds(h) == [A, B]
        recorded = await window(h)
        assert embed_calls(recorded) == 2
        assert gauges(recorded) == {
            "search_repeated_queries": 1 / 3,
            "search_query_cache_hit_rate": 1 / 3,
            "search_dead_slots": 0.0,
        }

        await retune(h, QUERY_CACHE_SIZE, 0)
        await dense(A, "fast avro files")  # asked before: a repeat, but embedded again
        assert await billed_embeds(h) == [A, B, A]
        recorded = await window(h)
        assert embed_calls(recorded) == 1
        assert gauges(recorded) == {"search_repeated_queries": 1.0, "search_dead_slots": 0.0}


async def test_a_lower_compaction_threshold_compacts_at_the_next_write(
    pg_url: str, tmp_path: Path
) -> None:
    settings = Settings(data_dir=tmp_path)
    [doc] = package_docs(("fastavro",))
    embeddings = random_embeddings([doc])
    await store_blob(open_blob_store(settings), doc)
    async with running(SearchService(), pg_url=pg_url, settings=settings) as h:
        [projection] = [c for c in h.consumers if c.group == "search"]

        await h.event_log.append(
            [ingested(doc, A, {"v": 0}), chunked(doc, A), *embeddings_of(doc, A, embeddings)]
        )
        await caught_up(h, projection.group)
        # New metadata moves each of the document's points to a new slot: twice, two dead
        # slots per live one, under the default threshold of 10,000.
        await h.event_log.append([referenced(doc, A, {"v": 1}), referenced(doc, A, {"v": 2})])
        await caught_up(h, projection.group)
        points = len({span.atom_id for span in doc.spans})
        assert gauges(await window(h))["search_dead_slots"] == 2 * points

        await retune(h, COMPACTION_MIN_DEAD, 1)
        assert gauges(await window(h))["search_dead_slots"] == 2 * points  # no write yet
        await h.event_log.append([referenced(doc, A, {"v": 3})])
        await caught_up(h, projection.group)
        assert gauges(await window(h))["search_dead_slots"] == 0
        assert sorted(p.name for p in (tmp_path / "search").glob("*/vectors*.f32")) == [
            "vectors-1.f32"
        ]


async def caught_up(h: Harness, group: str, timeout: float = 20.0) -> None:
    """Wait until `group` has committed everything appended to its topics."""
    async with asyncio.timeout(timeout):
        while True:
            ends = {
                (topic, partition): end
                for topic in ("atoms", "embeddings")
                for partition, end in (await h.event_log.end_offsets(topic)).items()
            }
            done = await h.event_log.committed(group, list(ends))
            if all(done.get(pair, 0) >= end for pair, end in ends.items()):
                return
            await asyncio.sleep(0.05)

"""Steady load on the real platform for the loop's end-to-end checks: a few clients calling
Embed back to back (bounded: until told to stop), and waits on the loop's API."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc

from hartonomous.v1 import inference_pb2, inference_pb2_grpc

T = TypeVar("T")
TEXT = "a steady stream of short questions about the platform"


async def embed_load(channel: grpc.aio.Channel, stop: asyncio.Event, clients: int = 4) -> int:
    """Embed calls made until `stop` (each client waits for its answer before the next)."""
    stub = inference_pb2_grpc.InferenceStub(channel)  # type: ignore[no-untyped-call]
    calls = 0

    async def client() -> None:
        nonlocal calls
        while not stop.is_set():
            await stub.Embed(inference_pb2.EmbedRequest(texts=[TEXT], tenant_id="acme"), timeout=30)
            calls += 1

    await asyncio.gather(*(client() for _ in range(clients)))
    return calls


async def until(probe: Callable[[], Awaitable[T | None]], timeout: float, every: float = 0.5) -> T:
    """The first non-None answer of `probe`, asked every `every` seconds for up to `timeout`."""
    async with asyncio.timeout(timeout):
        while True:
            found = await probe()
            if found is not None:
                return found
            await asyncio.sleep(every)

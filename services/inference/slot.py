"""A model (and what serves it) once loaded. A model read from its tensor atoms arrives after
the service is up (ingest serves the manifest over the same gRPC server in `hartonomous up`),
so a call or an event that comes first waits for it, up to a bound."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Generic, TypeVar

from services.inference.batching import Batcher
from services.inference.domain import ModelInfo, ModelLoading

WAIT_S = 60.0
"""How long a call or an event waits for the model before it is told to retry."""

T = TypeVar("T")


@dataclass(frozen=True)
class Loaded:
    """The embedding model's batcher and what its events say about it."""

    batcher: Batcher
    info: ModelInfo
    context_length: int  # tokens a text is truncated to


class Slot(Generic[T]):
    def __init__(self, what: str, wait_s: float = WAIT_S) -> None:
        self._what = what
        self._loaded: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._wait_s = wait_s

    def fill(self, loaded: T) -> None:
        self._loaded.set_result(loaded)

    def fail(self, error: BaseException) -> None:
        """Loading failed: every wait from now on raises ModelLoading with the reason."""
        self._loaded.set_exception(ModelLoading(f"the {self._what} failed to load: {error}"))
        self._loaded.exception()  # retrieved here: no caller may ever ask, and that is fine

    @property
    def now(self) -> T | None:
        """What is loaded, without waiting."""
        done = self._loaded.done() and self._loaded.exception() is None
        return self._loaded.result() if done else None

    async def get(self) -> T:
        try:
            return await asyncio.wait_for(asyncio.shield(self._loaded), self._wait_s)
        except TimeoutError:
            raise ModelLoading(f"the {self._what} is still loading; retry shortly") from None


ModelSlot = Slot[Loaded]

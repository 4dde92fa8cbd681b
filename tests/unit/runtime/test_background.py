"""Background work runs below the request path: the executor's thread, and the threads it
starts, have a higher nice value than the thread that made it; the caller's stays as it was."""

from __future__ import annotations

import os
import sys
import threading

import pytest

from hartonomous.runtime.background import NICE_INCREMENT, background_executor

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


def _nice_of_a_thread_started_here() -> int:
    seen: list[int] = []
    started = threading.Thread(target=lambda: seen.append(_nice()))
    started.start()
    started.join()
    return seen[0]


def test_the_worker_and_what_it_starts_run_at_a_lower_priority() -> None:
    before = _nice()
    executor = background_executor("test-background")
    try:
        worker = executor.submit(_nice).result()
        child = executor.submit(_nice_of_a_thread_started_here).result()
    finally:
        executor.shutdown()
    assert worker == min(before + NICE_INCREMENT, 19)
    assert child == worker
    assert _nice() == before

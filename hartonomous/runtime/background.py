"""Threads for work no request waits on, such as a projection's writes, at a lower CPU
priority than the request path's.

On `hartonomous up` the projections run in the process that answers requests, on the same
cores. A search's model call computes on both cores; when a projection's write holds one of
them, the call waits for it. Measured on 3,000 documents, sequential dense searches with the
provenance graph's threads at nice +10 against +0, alternating on one platform (800 each):
p50 15.8 against 16.4 ms, p99 32.6 against 40.6. Under full load a thread at +10 still gets
about a tenth of a core, so the projection slows down but does not stop.
"""

from __future__ import annotations

import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

NICE_INCREMENT = 10
_MAX_NICE = 19


def lower_this_thread() -> None:
    """Lower the calling thread's CPU priority by NICE_INCREMENT (Linux, where a thread's
    nice value is its own; elsewhere it would be the whole process's, so nothing is done)."""
    if sys.platform != "linux":
        return
    thread = threading.get_native_id()
    current = os.getpriority(os.PRIO_PROCESS, thread)
    os.setpriority(os.PRIO_PROCESS, thread, min(current + NICE_INCREMENT, _MAX_NICE))


def background_executor(name: str) -> ThreadPoolExecutor:
    """One worker thread, named `name`, at the lower priority."""
    return ThreadPoolExecutor(1, thread_name_prefix=name, initializer=lower_this_thread)

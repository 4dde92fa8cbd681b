"""release_free_heap hands freed C-heap pages back to the OS."""

from __future__ import annotations

import ctypes
import ctypes.util
import re
from pathlib import Path

import pytest

from services.inference.memory import release_free_heap

libc_name = ctypes.util.find_library("c")
libc = ctypes.CDLL(libc_name) if libc_name else None
pytestmark = pytest.mark.skipif(
    libc is None or not hasattr(libc, "malloc_trim"), reason="needs glibc (malloc_trim)"
)


def rss_mib() -> float:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) / 1024  # type: ignore[union-attr]


def test_freed_small_allocations_leave_the_process() -> None:
    assert libc is not None
    libc.malloc.restype = ctypes.c_void_p
    libc.free.argtypes = [ctypes.c_void_p]
    # 64 MiB in 4 KiB chunks (below the mmap threshold, so they live in the heap), touched,
    # then all freed but the last: it pins the top of the heap, so glibc's automatic trim
    # (which only shortens the heap from the top) cannot return the rest.
    chunks = [libc.malloc(4096) for _ in range(16_384)]
    for chunk in chunks:
        ctypes.memset(chunk, 1, 4096)
    for chunk in chunks[:-1]:
        libc.free(chunk)
    before = rss_mib()

    release_free_heap()

    assert before - rss_mib() > 32, "malloc_trim returned less than half of 64 MiB freed"
    libc.free(chunks[-1])

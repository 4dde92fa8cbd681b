"""A file of float32 vectors in fixed slots, memory-mapped for exact search.

Slots are only ever appended: a vector that changes goes to a new slot, so a slot a reader
is scoring never changes under it. Writes go through the file descriptor and are flushed to
disk before the caller records them anywhere (a crash leaves at worst unreferenced bytes past
the last recorded slot, which the next append overwrites)."""

from __future__ import annotations

import mmap
import os
from pathlib import Path

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]

_FIRST_CAPACITY = 1024


class VectorFile:
    def __init__(self, path: Path, dim: int) -> None:
        self.path = path
        self._dim = dim
        self._row_bytes = dim * 4
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        self._capacity = 0
        self._matrix: Matrix = np.zeros((0, dim), np.float32)
        self._map(max(_FIRST_CAPACITY, os.fstat(self._fd).st_size // self._row_bytes))

    @property
    def matrix(self) -> Matrix:
        """Every slot (read-only); rows past the caller's slot count are unused."""
        return self._matrix

    def write(self, first_slot: int, vectors: Matrix) -> None:
        """Store `vectors` in the slots from `first_slot` on, durably."""
        end = first_slot + len(vectors)
        if end > self._capacity:
            self._map(max(end, 2 * self._capacity))
        data = np.ascontiguousarray(vectors, np.float32).tobytes()
        os.pwrite(self._fd, data, first_slot * self._row_bytes)
        os.fdatasync(self._fd)

    def _map(self, capacity: int) -> None:
        """Grow the file to `capacity` slots and map all of them. The previous mapping stays
        valid for readers that still hold it."""
        if os.fstat(self._fd).st_size < capacity * self._row_bytes:
            os.ftruncate(self._fd, capacity * self._row_bytes)
        mapped = mmap.mmap(self._fd, capacity * self._row_bytes, prot=mmap.PROT_READ)
        self._matrix = np.frombuffer(mapped, np.float32).reshape(capacity, self._dim)
        self._capacity = capacity

    def close(self) -> None:
        os.close(self._fd)

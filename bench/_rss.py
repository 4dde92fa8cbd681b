"""How far a process's resident memory rises over a stretch of work (Linux): the kernel's
high-water mark, reset when the stretch begins, against the resident size at that moment. The
kernel keeps the mark at every page fault, so no peak between two samples goes unseen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RssGrowth:
    baseline_mib: float
    peak_mib: float = 0.0

    @property
    def growth_mib(self) -> float:
        return self.peak_mib - self.baseline_mib


@contextmanager
def rss_growth(pid: int | None = None) -> Iterator[RssGrowth]:
    """Measure process `pid` (this one by default) over the `with` block; the result's
    `peak_mib` is filled in when the block ends."""
    proc = Path("/proc", str(pid) if pid is not None else "self")
    (proc / "clear_refs").write_text("5")  # 5: reset the high-water mark to the current RSS
    growth = RssGrowth(baseline_mib=_status_mib(proc, "VmRSS"))
    yield growth
    growth.peak_mib = _status_mib(proc, "VmHWM")


def _status_mib(proc: Path, field: str) -> float:
    for line in (proc / "status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024  # kB
    raise RuntimeError(f"no {field} in {proc}/status")

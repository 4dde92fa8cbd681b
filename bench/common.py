"""Shared benchmark plumbing: the result format of DESIGN.md §6, percentiles, machine facts."""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass(frozen=True)
class Metric:
    metric: str
    unit: str
    value: float
    peer: str | None = None
    peer_value: float | None = None
    higher_is_better: bool = True

    @property
    def ratio(self) -> float | None:
        """ours/peer oriented so that > 1 means we are better."""
        if self.peer_value is None or self.peer_value == 0 or self.value == 0:
            return None
        return (
            self.value / self.peer_value if self.higher_is_better else self.peer_value / self.value
        )


def machine() -> dict[str, Any]:
    gpu = None
    try:
        import jax

        gpus = [d for d in jax.devices() if d.platform == "gpu"]
        gpu = gpus[0].device_kind if gpus else None
    except Exception:  # no jax, or no backend: a CPU machine
        gpu = None
    return {"cpus": os.cpu_count() or 0, "cpu_model": cpu_model(), "gpu": gpu}


def cpu_model() -> str | None:
    """The processor's name as Linux reports it: ratios against a peer depend on it (torch's
    MKL products are faster on Intel than on AMD), so results say which one they came from."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def write(name: str, metrics: list[Metric]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    results = []
    for m in metrics:
        row = asdict(m)
        del row["higher_is_better"]
        row["ratio"] = m.ratio
        results.append(row)
    path = RESULTS / f"{name}.json"
    path.write_text(
        json.dumps({"benchmark": name, "machine": machine(), "results": results}, indent=2)
    )
    return path

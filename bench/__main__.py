"""`make bench`: run every bench/<name>.py (or those named on the command line), write
bench/results/<name>.json each, and print one table."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

from bench.common import RESULTS

HERE = Path(__file__).resolve().parent
SKIP = {"common"}


def main(names: list[str]) -> int:
    # bench/_*.py are helpers of a benchmark, not benchmarks.
    available = sorted(p.stem for p in HERE.glob("[!_]*.py") if p.stem not in SKIP)
    chosen = names or available
    unknown = set(chosen) - set(available)
    if unknown:
        print(f"unknown benchmark(s) {sorted(unknown)}; available: {available}", file=sys.stderr)
        return 2
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        importlib.import_module(f"bench.{name}").main()
    print_table(chosen)
    return 0


def print_table(names: list[str]) -> None:
    runs = {name: json.loads((RESULTS / f"{name}.json").read_text()) for name in names}
    # The machine each result file was measured on (as it recorded), each machine once.
    for line in dict.fromkeys(machine_line(data["machine"]) for data in runs.values()):
        print(line)
    header = f"{'benchmark':<12} {'metric':<44} {'value':>12} {'unit':<10} {'peer':<28} {'peer value':>12} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for name, data in runs.items():
        for r in data["results"]:
            peer_value = "" if r["peer_value"] is None else f"{r['peer_value']:.4g}"
            ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}"
            print(
                f"{name:<12} {r['metric']:<44} {r['value']:>12.4g} {r['unit']:<10}"
                f" {r['peer'] or '':<28} {peer_value:>12} {ratio:>7}"
            )


def machine_line(facts: dict[str, Any]) -> str:
    cpu = facts.get("cpu_model") or "unknown CPU"  # absent in results from before it was kept
    return f"machine: {facts['cpus']} x {cpu}, GPU {facts['gpu']}"


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

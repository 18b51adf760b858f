"""A small benchmark harness: time a step, read peak memory, print and save a result row.

Benchmarks are scripts, not tests: run them on a quiet machine and copy the figures they
print into benchmarks/README.md. Each measured step reports wall time and the process's
peak resident memory so far (ru_maxrss), so run one size per process when peak memory matters.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / ".results"


def peak_memory_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class Timer:
    """Collected timings of one benchmark run."""

    name: str
    rows: list[dict[str, object]] = field(default_factory=list)

    @contextmanager
    def step(self, label: str, *, count: int | None = None, unit: str = "rows") -> Iterator[None]:
        """Time the block; with `count`, also print a rate."""
        start = time.perf_counter()
        yield
        seconds = time.perf_counter() - start
        row: dict[str, object] = {
            "step": label,
            "seconds": round(seconds, 3),
            "peak_mb": round(peak_memory_mb(), 1),
        }
        if count is not None:
            row[f"{unit}_per_s"] = round(count / seconds) if seconds > 0 else None
            row[unit] = count
        self.rows.append(row)
        print(json.dumps(row), flush=True)

    def save(self) -> Path:
        """Write the rows with the machine's description to benchmarks/.results/NAME.json."""
        RESULTS_DIR.mkdir(exist_ok=True)
        path = RESULTS_DIR / f"{self.name}.json"
        machine = {"cpus": os.cpu_count(), "python": platform.python_version()}
        path.write_text(json.dumps({"machine": machine, "rows": self.rows}, indent=2))
        return path

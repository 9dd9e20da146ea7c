"""Where a process spends its time: named laps of the wall clock, and when the process began.

The train stage keeps one `Laps` and writes it to timings/<cell>.json, so the fixed cost of
a train process (starting Python, importing TensorFlow, loading the data, building the model,
tracing its graphs, saving) can be read beside the time of its epochs (bench/bench_startup.py).
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def process_started() -> float | None:
    """When this process began, in seconds since the epoch (Linux's /proc); None elsewhere."""
    try:
        fields = Path("/proc/self/stat").read_text().rsplit(")", 1)[1].split()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")  # field 22: start time in ticks
    except (OSError, ValueError, IndexError, StopIteration):
        return None


class Laps:
    """Wall-clock seconds per named phase, each lap from the end of the one before."""

    def __init__(self) -> None:
        self.created: float | None = time.time()
        self._last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def reset(self) -> None:
        """Start again from now, with no `startup` phase (a second cell trained in one process)."""
        self.created, self._last, self.seconds = None, time.perf_counter(), {}

    def lap(self, name: str) -> float:
        """Add the time since the last lap (or since creation) to `name`; returns that time."""
        now = time.perf_counter()
        spent, self._last = now - self._last, now
        self.add(name, spent)
        return spent

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def move(self, source: str, name: str, seconds: float) -> None:
        """Count `seconds` of what `source` holds as `name` instead (e.g. tracing inside a fit)."""
        seconds = min(seconds, self.seconds.get(source, 0.0))
        self.add(source, -seconds)
        self.add(name, seconds)

    def record(self) -> dict[str, float]:
        """Each phase rounded to ms, led by `startup` (process start to this clock's creation:
        Python and the imports before it) when the start is known, and the `total`."""
        started = process_started() if self.created is not None else None
        phases = {"startup": max(0.0, self.created - started)} if started is not None else {}
        phases.update(self.seconds)
        phases["total"] = sum(phases.values())
        return {name: round(value, 3) for name, value in phases.items()}

"""A fixed-bucket latency histogram kept by domain objects and exported by /metrics at scrape time."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

# seconds; Prometheus' defaults, which suit both queue waits and cell runs
BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class TimingSnapshot:
    buckets: tuple[tuple[float, int], ...]  # (upper bound, cumulative count), +Inf last
    count: int
    total: float


class Timings:
    """Observations in seconds, counted per bucket; O(log buckets) per observation, no allocation."""

    def __init__(self, bounds: tuple[float, ...] = BUCKETS) -> None:
        self.bounds = bounds
        self._counts = [0] * (len(bounds) + 1)
        self._total = 0.0

    def observe(self, seconds: float) -> None:
        self._counts[bisect.bisect_left(self.bounds, seconds)] += 1
        self._total += seconds

    def snapshot(self) -> TimingSnapshot:
        cumulative, running = [], 0
        for bound, count in zip((*self.bounds, float("inf")), self._counts, strict=True):
            running += count
            cumulative.append((bound, running))
        return TimingSnapshot(tuple(cumulative), running, self._total)

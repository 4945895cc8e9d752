"""A service's traffic numbers: counts, 5xx errors, the one-minute rate and interpolated quantiles."""

from __future__ import annotations

from app.services.traffic import Traffic


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_counts_errors_rate_and_quantiles() -> None:
    clock = Clock()
    traffic = Traffic(clock)
    assert traffic.stats() == {"requests": 0, "errors": 0, "rate": 0.0, "p50": None, "p99": None}
    for _ in range(99):
        traffic.observe(200, 0.003)  # in the first bucket (0, 5 ms]
    traffic.observe(503, 3.0)  # in (2.5 s, 5 s]
    stats = traffic.stats()
    assert (stats["requests"], stats["errors"]) == (100, 1)
    assert stats["rate"] == round(100 / 60, 3)
    assert 0 < stats["p50"] <= 0.005
    assert 0 < stats["p99"] <= 0.005
    traffic.observe(200, 3.0)
    assert 2.5 <= traffic.stats()["p99"] <= 5.0
    clock.now += 61  # the window has moved past every request
    assert traffic.stats()["rate"] == 0.0
    assert traffic.stats()["requests"] == 101

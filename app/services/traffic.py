"""A service's traffic numbers for the REST API and the admin page: requests served, server errors, the
request rate over the last minute and latency quantiles, measured where every service request passes (its
version's `run`)."""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from app.http.asgi import ASGIApp, Message, Receive, Scope, Send
from app.kernels.timings import Timings, TimingSnapshot

WINDOW = 60.0  # seconds the rate is averaged over


def quantile(snapshot: TimingSnapshot, q: float) -> float | None:
    """The q-quantile in seconds, interpolated inside its bucket (None before the first request); a value
    past the last finite bound reads as that bound."""
    if not snapshot.count:
        return None
    rank, lower, below = q * snapshot.count, 0.0, 0
    for bound, cumulative in snapshot.buckets:
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            inside = cumulative - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, cumulative
    return lower


class Traffic:
    """Counted once per finished HTTP request; O(1) per request, the rate window holds one slot a second."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self._clock = clock
        self.requests = 0
        self.errors = 0
        self.latency = Timings()
        self._seconds: deque[list[float]] = deque()  # [second, count], oldest first

    def observe(self, status: int, seconds: float) -> None:
        self.requests += 1
        if status >= 500:
            self.errors += 1
        self.latency.observe(seconds)
        now = float(int(self._clock()))
        if self._seconds and self._seconds[-1][0] == now:
            self._seconds[-1][1] += 1
        else:
            self._seconds.append([now, 1])
        self._trim(now)

    async def count(self, app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request with `app`, counting it with its status and its time to the end of the
        response: 500 when the app fails before answering; not at all when it ends without answering (the
        client went away)."""
        status: int | None = None
        started = time.perf_counter()

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await app(scope, receive, watch)
        except BaseException:
            self.observe(status or 500, time.perf_counter() - started)
            raise
        if status is not None:
            self.observe(status, time.perf_counter() - started)

    def _trim(self, now: float) -> None:
        while self._seconds and self._seconds[0][0] <= now - WINDOW:
            self._seconds.popleft()

    def rate(self) -> float:
        """Requests per second over the last minute."""
        self._trim(float(int(self._clock())))
        return sum(count for _, count in self._seconds) / WINDOW

    def stats(self) -> dict[str, Any]:
        snapshot = self.latency.snapshot()
        return {
            "requests": self.requests,
            "errors": self.errors,
            "rate": round(self.rate(), 3),
            "p50": quantile(snapshot, 0.5),
            "p99": quantile(snapshot, 0.99),
        }

"""A pool of private kernels lent out one request at a time, FIFO, and always given back.

A kernel that died or hung while lent is replaced in the background (seeded again); borrowers wait
for the next healthy kernel rather than failing, up to a limit. With a `max_size` above `size` the pool
grows while borrowers queue and shrinks back to `size` once kernels sit idle; `drain` stops it gracefully.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.errors import KernelUnavailable
from app.kernels.kernel import Kernel
from app.kernels.service import KernelService
from app.kernels.timings import Timings, TimingSnapshot

log = logging.getLogger(__name__)


class Lease:
    """A borrowed kernel; mark it broken to have it replaced instead of returned."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.broken = False


@dataclass(frozen=True)
class PoolStats:
    """A snapshot: configured bounds, kernels started, idle and lent, borrowers waiting and their waits."""

    min: int  # the size the pool is filled to and shrinks back to
    max: int  # the size it may grow to while borrowers queue
    members: int  # started and not being replaced
    idle: int
    busy: int
    waiting: int  # borrowers queued for a kernel
    waits: TimingSnapshot  # how long borrowers waited

    @property
    def size(self) -> int:
        """Kernels the pool has now (the REST API's `pool.size`)."""
        return self.members


class KernelPool:
    def __init__(
        self,
        kernels: KernelService,
        size: int,
        kernel_name: str | None,
        *,
        max_size: int | None = None,
        start: Callable[[], Awaitable[Kernel]] | None = None,
        shrink_after: float = 60.0,
    ) -> None:
        self.kernels = kernels
        self.size = max(1, size)
        self.max_size = max(self.size, max_size or self.size)
        self.kernel_name = kernel_name
        self.shrink_after = shrink_after
        self._start = start or (lambda: kernels.start_private(kernel_name))
        self._idle: asyncio.Queue[Kernel] = asyncio.Queue()
        self._members: set[Kernel] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._draining = False
        self._busy = 0
        self._waiting = 0
        self._waits = Timings()
        self._growing = 0
        self._last_demand = time.monotonic()
        self._quiet = asyncio.Event()
        self._quiet.set()

    async def fill(self) -> None:
        """Start every kernel of the pool; raise if any fails (a failing startup cell stops startup)."""
        started = await asyncio.gather(*(self._start() for _ in range(self.size)), return_exceptions=True)
        errors = [k for k in started if isinstance(k, BaseException)]
        for kernel in started:
            if isinstance(kernel, Kernel):
                self._members.add(kernel)
                self._idle.put_nowait(kernel)
        if errors:
            raise errors[0]
        if self.max_size > self.size:
            self._spawn(self._shrink_when_idle())

    @property
    def idle(self) -> int:
        return self._idle.qsize()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _update_quiet(self) -> None:
        if self._busy or self._waiting:
            self._quiet.clear()
        else:
            self._quiet.set()

    def _grow_if_queued(self) -> None:
        """A borrower is about to wait: start one more kernel if the pool may grow."""
        if self._closed or self._draining or self._idle.qsize() > self._growing:
            return
        if len(self._members) + self._growing < self.max_size:
            self._growing += 1
            self._spawn(self._grow())

    async def _grow(self) -> None:
        try:
            kernel = await self._start()
        except Exception as exc:
            log.error("could not grow the pool: %s", exc)
            return
        finally:
            self._growing -= 1
        if self._closed:
            await self.kernels.dispose(kernel)
            return
        self._members.add(kernel)
        self._idle.put_nowait(kernel)

    async def _shrink_when_idle(self) -> None:
        """Give back one kernel above `size` per `shrink_after` seconds without demand."""
        while not self._closed:
            await asyncio.sleep(self.shrink_after / 2)
            quiet_for = time.monotonic() - self._last_demand
            if quiet_for >= self.shrink_after and len(self._members) > self.size and self._idle.qsize():
                kernel = self._idle.get_nowait()
                self._members.discard(kernel)
                await self.kernels.dispose(kernel)

    async def drain(self, deadline: float) -> None:
        """Stop growing, wait (at most `deadline` seconds) until nothing is lent or awaited, then close."""
        self._draining = True
        try:
            async with asyncio.timeout(deadline):
                await self._quiet.wait()
        except TimeoutError:
            log.warning("pool drain deadline (%g s) passed with %d kernels lent", deadline, self._busy)
        await self.close()

    @contextlib.asynccontextmanager
    async def lease(self, wait_limit: float) -> AsyncIterator[Lease]:
        """Borrow a kernel (waiting in FIFO order, at most wait_limit seconds); it goes back on every path,
        or is replaced."""
        if self._closed:
            raise KernelUnavailable("This notebook's kernels have been shut down")
        began = self._last_demand = time.monotonic()
        self._waiting += 1
        self._update_quiet()
        kernel: Kernel | None = None
        try:
            if self._idle.empty():
                self._grow_if_queued()
            async with asyncio.timeout(wait_limit):
                kernel = await self._idle.get()
        except TimeoutError:
            raise KernelUnavailable(
                f"No kernel became free within {wait_limit:g} s ({len(self._members)} kernels, all busy)"
            ) from None
        finally:
            self._waiting -= 1
            self._waits.observe(time.monotonic() - began)
            if kernel is not None:
                self._busy += 1  # counted before the quiet check, so a drain never sees a gap
            self._update_quiet()
        lease = Lease(kernel)
        try:
            yield lease
        finally:
            self._busy -= 1
            self._update_quiet()
            if lease.broken or kernel.execution_state == "dead":
                self._replace(kernel)
            elif not self._closed:
                self._idle.put_nowait(kernel)

    def stats(self) -> PoolStats:
        members, idle = len(self._members), self._idle.qsize()
        waits = self._waits.snapshot()
        return PoolStats(self.size, self.max_size, members, idle, self._busy, self._waiting, waits)

    def members(self) -> list[Kernel]:
        return list(self._members)

    def _replace(self, kernel: Kernel) -> None:
        if self._closed:
            return
        self._members.discard(kernel)
        self._spawn(self._renew(kernel))

    async def _renew(self, old: Kernel) -> None:
        log.warning("replacing pool kernel %s", old.id)
        await self.kernels.dispose(old)
        delay = 0.5
        while not self._closed:
            try:
                kernel = await self._start()
            except Exception as exc:
                if self.kernels.closing:
                    return
                log.error("could not start a replacement pool kernel: %s", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 30)
                continue
            self._members.add(kernel)
            self._idle.put_nowait(kernel)
            return

    async def close(self) -> None:
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        members = list(self._members)
        self._members.clear()
        await asyncio.gather(*(self.kernels.dispose(k) for k in members), return_exceptions=True)

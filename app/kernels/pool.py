"""A fixed-size pool of private kernels lent out one request at a time, FIFO, and always given back.

A kernel that died or hung while lent is replaced in the background (seeded again); borrowers wait
for the next healthy kernel rather than failing, up to a limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
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
    size: int  # target
    members: int  # started and not being replaced
    idle: int
    busy: int
    waiting: int  # borrowers queued for a kernel
    waits: TimingSnapshot  # how long borrowers waited


class KernelPool:
    def __init__(self, kernels: KernelService, size: int, kernel_name: str | None) -> None:
        self.kernels = kernels
        self.size = max(1, size)
        self.kernel_name = kernel_name
        self._idle: asyncio.Queue[Kernel] = asyncio.Queue()
        self._members: set[Kernel] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False
        self._waiting = 0
        self._waits = Timings()

    async def fill(self) -> None:
        """Start every kernel of the pool; raise if any fails (a failing startup cell stops startup)."""
        started = await asyncio.gather(
            *(self.kernels.start_private(self.kernel_name) for _ in range(self.size)), return_exceptions=True
        )
        errors = [k for k in started if isinstance(k, BaseException)]
        for kernel in started:
            if isinstance(kernel, Kernel):
                self._members.add(kernel)
                self._idle.put_nowait(kernel)
        if errors:
            raise errors[0]

    @property
    def idle(self) -> int:
        return self._idle.qsize()

    @contextlib.asynccontextmanager
    async def lease(self, wait_limit: float) -> AsyncIterator[Lease]:
        """Borrow a kernel (waiting in FIFO order, at most wait_limit seconds); it goes back on every path,
        or is replaced."""
        began = time.monotonic()
        self._waiting += 1
        try:
            async with asyncio.timeout(wait_limit):
                kernel = await self._idle.get()
        except TimeoutError:
            raise KernelUnavailable(
                f"No kernel became free within {wait_limit:g} s ({self.size} kernels, all busy)"
            ) from None
        finally:
            self._waiting -= 1
            self._waits.observe(time.monotonic() - began)
        lease = Lease(kernel)
        try:
            yield lease
        finally:
            if lease.broken or kernel.execution_state == "dead":
                self._replace(kernel)
            elif not self._closed:
                self._idle.put_nowait(kernel)

    def stats(self) -> PoolStats:
        members, idle = len(self._members), self._idle.qsize()
        return PoolStats(self.size, members, idle, members - idle, self._waiting, self._waits.snapshot())

    def members(self) -> list[Kernel]:
        return list(self._members)

    def _replace(self, kernel: Kernel) -> None:
        if self._closed:
            return
        self._members.discard(kernel)
        task = asyncio.get_running_loop().create_task(self._renew(kernel))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _renew(self, old: Kernel) -> None:
        log.warning("replacing pool kernel %s", old.id)
        await self.kernels.dispose(old)
        delay = 0.5
        while not self._closed:
            try:
                kernel = await self.kernels.start_private(self.kernel_name)
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

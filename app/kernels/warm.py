"""The warm pool: started, seeded kernels of the default kernelspec waiting for a start without `env`."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from app.kernels.kernel import Kernel

log = logging.getLogger(__name__)


class WarmPool:
    """Holds warm kernels and refills itself within the service's limit. The service owns it: `start`
    launches a kernel of a name, `spawn` runs a task the service owns, `dispose` shuts a kernel down,
    `full` says whether every place under max_kernels is held, `closing` whether the service is closing."""

    def __init__(
        self,
        target: int,
        kernel_name: str,
        *,
        start: Callable[[str], Awaitable[Kernel]],
        spawn: Callable[[Coroutine[Any, Any, None]], asyncio.Task[Any]],
        dispose: Callable[[Kernel], Awaitable[None]],
        full: Callable[[], bool],
        closing: Callable[[], bool],
    ) -> None:
        self.target = target
        self.kernel_name = kernel_name  # only the default kernelspec is kept warm
        self._start = start
        self._spawn = spawn
        self._dispose = dispose
        self._full = full
        self._closing = closing
        self._warm: dict[str, deque[Kernel]] = {}
        self.starting = 0

    def kernels(self) -> list[Kernel]:
        return [kernel for pool in self._warm.values() for kernel in pool]

    @property
    def count(self) -> int:
        return sum(len(pool) for pool in self._warm.values())

    def take(self, kernel_name: str) -> Kernel | None:
        pool = self._warm.get(kernel_name)
        return pool.popleft() if pool else None

    def put_back(self, kernel_name: str, kernel: Kernel) -> None:
        """Return a kernel taken for a start that was then refused, first in line again."""
        self._warm[kernel_name].appendleft(kernel)

    def evict(self) -> Kernel | None:
        """Give up one warm kernel (the caller disposes of it), to free its place."""
        for pool in self._warm.values():
            if pool:
                return pool.pop()
        return None

    def refill(self, kernel_name: str) -> list[asyncio.Task[Any]]:
        if self.target <= 0 or self._closing() or kernel_name != self.kernel_name:
            return []
        pool = self._warm.setdefault(kernel_name, deque())
        missing = self.target - len(pool) - self.starting
        tasks = []
        for _ in range(max(0, missing)):
            if self._full():
                break
            self.starting += 1  # counted now, so the next check (and the next refill) sees it
            tasks.append(self._spawn(self._add(kernel_name, pool)))
        return tasks

    async def _add(self, kernel_name: str, pool: deque[Kernel]) -> None:
        try:
            kernel = await self._start(kernel_name)
        except Exception:
            log.exception("could not start a warm kernel")
            return
        finally:
            self.starting -= 1
        if self._closing() or self._full():
            await self._dispose(kernel)  # visible kernels took the place while this one warmed up
        else:
            pool.append(kernel)

    async def fill(self) -> None:
        """Start the warm pool and wait until it is ready (startup)."""
        await asyncio.gather(*self.refill(self.kernel_name))

    def clear(self) -> None:
        self._warm.clear()

"""The kernel service: start (name policy, env policy, limits, seeding, warm pool), list, restart, stop."""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.ioloop.manager import AsyncIOLoopKernelManager
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager, NoSuchKernel
from traitlets.config import Config

from app.errors import KernelLimitReached, KernelNotFound, KernelSpecNotFound, KernelStartFailed, SeedFailed
from app.kernels.channels import new_context
from app.kernels.environment import kernel_environment
from app.kernels.hub import Replay
from app.kernels.kernel import Kernel
from app.kernels.seed import Seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class KernelPolicy:
    """What the service needs from Settings."""

    max_kernels: int | None = None
    default_kernel_name: str = ""
    force_kernel_name: str = ""
    env_whitelist: list[str] = field(default_factory=list)
    env_process_whitelist: list[str] = field(default_factory=list)
    start_timeout: float = 60.0
    replay_seconds: float = 60.0
    replay_sessions: int = 1
    replay_bytes: int = 64 * 1024 * 1024
    warm_pool: int = 0
    shutdown_wait: float = 3.0
    restart_poll: float = 1.0


class KernelService:
    """Owns every kernel this gateway started. Async-safe: the limit check and count happen atomically."""

    def __init__(self, policy: KernelPolicy, specs: KernelSpecManager, seed: Seed | None = None) -> None:
        self.policy = policy
        self.specs = specs
        self.seed = seed
        self.context = new_context()
        self._kernels: dict[str, Kernel] = {}
        self._starting = 0
        self._warm: dict[str, deque[Kernel]] = {}
        self._warm_starting = 0
        self._private: set[Kernel] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._config = Config(
            {
                "KernelRestarter": {"time_to_dead": policy.restart_poll},
                "KernelManager": {"shutdown_wait_time": policy.shutdown_wait},
            }
        )
        self._closing = False

    # -- names and specs ------------------------------------------------------------------------
    @property
    def default_kernel_name(self) -> str:
        return self.policy.default_kernel_name or NATIVE_KERNEL_NAME

    def resolve_name(self, requested: str | None) -> str:
        """KG's order: a forced name, else the requested one, else the default."""
        name = self.policy.force_kernel_name or requested or self.default_kernel_name
        self.spec(name)
        return name

    def spec(self, name: str) -> Any:
        try:
            return self.specs.get_kernel_spec(name)
        except (NoSuchKernel, ValueError, OSError):
            raise KernelSpecNotFound(name) from None

    # -- queries ------------------------------------------------------------------------------
    def running(self) -> list[Kernel]:
        return list(self._kernels.values())

    def get(self, kernel_id: str) -> Kernel:
        kernel = self._kernels.get(kernel_id)
        if kernel is None:
            raise KernelNotFound(kernel_id)
        return kernel

    def __len__(self) -> int:
        return len(self._kernels)

    # -- start --------------------------------------------------------------------------------
    def _reserve(self, *, evict: bool = True) -> None:
        """Count a start in progress, or refuse; evict a warm kernel if it holds the last place."""
        limit = self.policy.max_kernels
        if limit is not None:
            if len(self._kernels) + self._starting >= limit:
                raise KernelLimitReached(f"Resource Limit: at most {limit} kernels may run")
            if evict and self._in_use() >= limit:
                self._evict_warm()
        self._starting += 1

    def _in_use(self) -> int:
        """Kernel processes held: visible, starting, warm and warming."""
        return len(self._kernels) + self._starting + self.warm_count + self._warm_starting

    async def start(self, name: str | None = None, env: Mapping[str, str] | None = None) -> Kernel:
        """Start (or take from the warm pool) a ready, seeded kernel and register it."""
        kernel_name = self.resolve_name(name)
        warm = self._take_warm(kernel_name) if env is None else None
        try:
            # taking a warm kernel adds no process, so it needs no eviction
            self._reserve(evict=warm is None)
        except KernelLimitReached:
            if warm is not None:
                self._warm[kernel_name].appendleft(warm)
            raise
        try:
            kernel = warm or await self._launch(kernel_name, env)
            self._kernels[kernel.id] = kernel
        finally:
            self._starting -= 1
        self._refill_warm(kernel_name)
        log.info("kernel %s started (%s)", kernel.id, kernel_name)
        return kernel

    async def _launch(self, kernel_name: str, env: Mapping[str, str] | None) -> Kernel:
        kernel_env = kernel_environment(
            env,
            process_env=os.environ,
            env_whitelist=self.policy.env_whitelist,
            process_whitelist=self.policy.env_process_whitelist,
        )
        manager = AsyncIOLoopKernelManager(
            kernel_name=kernel_name, kernel_spec_manager=self.specs, config=self._config
        )
        replay = Replay(self.policy.replay_seconds, self.policy.replay_sessions, self.policy.replay_bytes)
        kernel = Kernel(str(uuid.uuid4()), kernel_name, manager, self.context, replay=replay)
        try:
            async with asyncio.timeout(self.policy.start_timeout):
                await manager.start_kernel(env=kernel_env)
                kernel.open()
                await kernel.executor.wait_ready(self.policy.start_timeout)
                if self.seed is not None and self.seed.applies_to(kernel_name):
                    await self.seed.run(kernel.executor, self.policy.start_timeout)
        except BaseException as exc:
            await self._dispose(kernel)
            if isinstance(exc, SeedFailed):
                raise
            if isinstance(exc, TimeoutError):
                raise KernelStartFailed(f"Kernel {kernel_name} did not start in time") from None
            if isinstance(exc, Exception):
                log.exception("kernel %s failed to start", kernel_name)
                raise KernelStartFailed(f"Kernel {kernel_name} failed to start") from None
            raise
        kernel.execution_state = "idle"
        return kernel

    async def start_private(self, name: str | None = None) -> Kernel:
        """A seeded kernel for the gateway's own use (notebook-http pools): not listed, not counted."""
        kernel = await self._launch(self.resolve_name(name), None)
        self._private.add(kernel)
        return kernel

    async def dispose(self, kernel: Kernel) -> None:
        """Shut down a private kernel."""
        self._private.discard(kernel)
        await self._dispose(kernel)

    # -- warm pool ----------------------------------------------------------------------------
    @property
    def warm_count(self) -> int:
        return sum(len(pool) for pool in self._warm.values())

    def _take_warm(self, kernel_name: str) -> Kernel | None:
        pool = self._warm.get(kernel_name)
        return pool.popleft() if pool else None

    def _evict_warm(self) -> None:
        for pool in self._warm.values():
            if pool:
                self._spawn(self._dispose(pool.pop()))
                return

    def _refill_warm(self, kernel_name: str) -> list[asyncio.Task[Any]]:
        if self.policy.warm_pool <= 0 or self._closing or kernel_name != self.default_kernel_name:
            return []
        pool = self._warm.setdefault(kernel_name, deque())
        limit = self.policy.max_kernels
        missing = self.policy.warm_pool - len(pool) - self._warm_starting
        tasks = []
        for _ in range(max(0, missing)):
            if limit is not None and self._in_use() >= limit:
                break
            self._warm_starting += 1  # counted now, so the next check (and the next refill) sees it
            tasks.append(self._spawn(self._add_warm(kernel_name, pool)))
        return tasks

    async def _add_warm(self, kernel_name: str, pool: deque[Kernel]) -> None:
        try:
            kernel = await self._launch(kernel_name, None)
        except Exception:
            log.exception("could not start a warm kernel")
            return
        finally:
            self._warm_starting -= 1
        limit = self.policy.max_kernels
        if self._closing or (limit is not None and self._in_use() >= limit):
            await self._dispose(kernel)  # visible kernels took the place while this one warmed up
        else:
            pool.append(kernel)

    async def fill_warm_pool(self) -> None:
        """Start the warm pool and wait until it is ready (startup)."""
        await asyncio.gather(*self._refill_warm(self.default_kernel_name))

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- operations ---------------------------------------------------------------------------
    async def interrupt(self, kernel_id: str) -> None:
        await self.get(kernel_id).interrupt()

    async def restart(self, kernel_id: str) -> Kernel:
        kernel = self.get(kernel_id)
        try:
            async with asyncio.timeout(self.policy.start_timeout):
                await kernel.manager.restart_kernel(now=False)
                kernel.notify("restarted")
                await kernel.executor.wait_ready(self.policy.start_timeout)
        except TimeoutError:
            raise KernelStartFailed("The kernel did not come back after restart") from None
        kernel.execution_state = "idle"
        return kernel

    async def shutdown(self, kernel_id: str) -> None:
        kernel = self._kernels.pop(kernel_id, None)
        if kernel is None:
            raise KernelNotFound(kernel_id)
        await self._dispose(kernel)
        log.info("kernel %s shut down", kernel_id)

    async def _dispose(self, kernel: Kernel) -> None:
        kernel.notify("shutdown")
        await kernel.close()
        await kernel.shutdown()

    async def close(self) -> None:
        """Shut down every kernel (visible and warm) and the ZMQ context."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        kernels = [
            *self._kernels.values(),
            *(k for pool in self._warm.values() for k in pool),
            *self._private,
        ]
        self._kernels.clear()
        self._warm.clear()
        self._private.clear()
        await asyncio.gather(*(self._dispose(k) for k in kernels), return_exceptions=True)
        self.context.destroy(linger=0)

"""The kernel service: owns every kernel; start (name policy, limits, tenants), list, restart, stop.

Launching one kernel (env policy, seeding, retries) is launcher.py's; the warm pool is warm.py's."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpec, KernelSpecManager, NoSuchKernel

from app.errors import (
    KernelLimitReached,
    KernelNotFound,
    KernelSpecNotFound,
    KernelStartFailed,
    KernelUnavailable,
)
from app.kernels.channels import new_context
from app.kernels.events import KernelEventKind, KernelEvents
from app.kernels.kernel import Kernel
from app.kernels.launcher import KernelLauncher, Launch
from app.kernels.policy import KernelPolicy
from app.kernels.ports import PortPool
from app.kernels.seed import Seed
from app.kernels.tenants import Tenants, kernel_username
from app.kernels.warm import WarmPool

log = logging.getLogger(__name__)

SHUTTING_DOWN = "The gateway is shutting down"
FAILURES_KEPT = 100


@dataclass(frozen=True)
class ShutdownFailure:
    """A kernel whose provisioner did not confirm it was gone (a remote process may be left running)."""

    kernel_id: str
    kernel_name: str
    at: float


@dataclass(frozen=True)
class KernelServiceStats:
    running: int  # listed kernels
    starting: int
    warm: int
    warm_starting: int
    warm_target: int
    private: int  # notebook-http pool kernels
    max_kernels: int | None
    stopping: int = 0  # shut down, not yet confirmed gone by their provisioners
    shutdown_failures: int = 0  # kernels whose provisioner never confirmed they were gone


class KernelService:
    """Owns every kernel this gateway started. Async-safe: the limit check and count happen atomically."""

    def __init__(self, policy: KernelPolicy, specs: KernelSpecManager, seed: Seed | None = None) -> None:
        self.policy = policy
        self.specs = specs
        self.seed = seed
        self.context = new_context()
        self._kernels: dict[str, Kernel] = {}
        self._starting = 0
        self._stopping = 0  # shut down, not yet confirmed gone by their provisioners: still counted
        self.tenants = Tenants(policy.tenants)
        self.shutdown_failures: deque[ShutdownFailure] = deque(maxlen=FAILURES_KEPT)  # the latest
        self._shutdown_failure_count = 0
        self._private: set[Kernel] = set()
        self._live: set[Kernel] = set()  # every kernel launched and not yet reaped, listed or not
        self._tasks: set[asyncio.Task[Any]] = set()
        self._disposals: set[asyncio.Task[Any]] = set()
        self._closing = False
        self.events = KernelEvents()
        self._launcher = KernelLauncher(
            policy, specs, self.context, self.events, seed, track=self._live.add, dispose=self._dispose
        )
        self._warm = WarmPool(
            policy.warm_pool,
            self.default_kernel_name,
            start=self._start_warm,
            spawn=self._spawn,
            dispose=self._dispose,
            full=self._full,
            closing=lambda: self._closing,
        )

    # -- names and specs ------------------------------------------------------------------------
    @property
    def default_kernel_name(self) -> str:
        return self.policy.default_kernel_name or NATIVE_KERNEL_NAME

    async def resolve(self, requested: str | None) -> tuple[str, KernelSpec]:
        """KG's order: a forced name, else the requested one, else the default; and its kernelspec."""
        name = self.policy.force_kernel_name or requested or self.default_kernel_name
        return name, await self.spec(name)

    async def spec(self, name: str) -> KernelSpec:
        """Read a kernelspec off the event loop (it is a directory scan and a file read)."""
        try:
            return await asyncio.to_thread(self.specs.get_kernel_spec, name)
        except (NoSuchKernel, ValueError, OSError):
            raise KernelSpecNotFound(name) from None

    @property
    def closing(self) -> bool:
        return self._closing

    def _check_open(self) -> None:
        if self._closing:
            raise KernelUnavailable(SHUTTING_DOWN)

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
            if len(self._kernels) + self._starting + self._stopping >= limit:
                raise KernelLimitReached("Resource Limit")  # KG's exact message
            if evict and self._in_use() >= limit:
                self._evict_warm()
        self._starting += 1

    def _in_use(self) -> int:
        """Kernel processes held: visible, starting, stopping, warm and warming."""
        return len(self._kernels) + self._starting + self._stopping + self._warm.count + self._warm.starting

    def _full(self) -> bool:
        """Every place under max_kernels is held (no limit: never)."""
        limit = self.policy.max_kernels
        return limit is not None and self._in_use() >= limit

    async def start(self, name: str | None = None, env: Mapping[str, str] | None = None) -> Kernel:
        """Start (or take from the warm pool) a ready, seeded kernel and register it."""
        self._check_open()
        kernel_name, spec = await self.resolve(name)
        self._check_open()
        user = kernel_username(env)
        self.tenants.admit(user, spec.display_name)
        warm = self._warm.take(kernel_name) if env is None else None
        try:
            # taking a warm kernel adds no process, so it needs no eviction
            self._reserve(evict=warm is None)
        except KernelLimitReached:
            self.tenants.release(user)
            if warm is not None:
                self._warm.put_back(kernel_name, warm)
            raise
        try:
            kernel = warm or await self._launch(kernel_name, spec, Launch(env=env))
            self._check_open()  # close() reaps it: it is still live
            kernel.tenant = user
            self._kernels[kernel.id] = kernel
        except BaseException:
            self.tenants.release(user)
            raise
        finally:
            self._starting -= 1
        kernel.owner = (env or {}).get("KERNEL_USERNAME") or None
        self._warm.refill(kernel_name)
        log.info("kernel %s started (%s)", kernel.id, kernel_name)
        self.events.emit(KernelEventKind.STARTED, kernel.id, kernel_name)
        return kernel

    async def _launch(self, kernel_name: str, spec: KernelSpec, launch: Launch) -> Kernel:
        """Start a kernel in a task the service owns, so that close() can stop it and reap what it made,
        even when the caller (a request uvicorn cancels at shutdown) is gone."""
        self._check_open()
        task = self._spawn(self._launcher.start(kernel_name, spec, launch))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if current is None or not current.cancelling():
                raise KernelUnavailable(SHUTTING_DOWN) from None  # close() stopped the start
            task.add_done_callback(self._reap_unclaimed)  # the caller went away; the kernel must not stay
            raise

    def _reap_unclaimed(self, task: asyncio.Task[Kernel]) -> None:
        if task.cancelled() or task.exception() is not None:
            return
        if not self._closing:  # when closing, close() reaps every live kernel
            self._spawn_dispose(task.result())

    async def start_private(
        self,
        name: str | None = None,
        *,
        seed: Seed | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
    ) -> Kernel:
        """A seeded kernel for the gateway's own use (notebook-http pools): not listed, not counted.

        A notebook service passes its own `seed` (instead of KG_SEED_URI's), `env` (added to the inherited
        environment) and `cwd` (the kernel's working directory)."""
        self._check_open()
        kernel_name, spec = await self.resolve(name)
        kernel = await self._launch(kernel_name, spec, Launch(seed=seed, extra_env=env, cwd=cwd))
        self._check_open()
        self._private.add(kernel)
        return kernel

    async def dispose(self, kernel: Kernel) -> None:
        """Shut down a private kernel."""
        self._private.discard(kernel)
        await self._dispose(kernel)

    # -- warm pool ----------------------------------------------------------------------------
    @property
    def port_pool(self) -> PortPool:
        """The ports leased to local kernels (app/kernels/ports.py)."""
        return self._launcher.ports

    def warm_kernels(self) -> list[Kernel]:
        return self._warm.kernels()

    @property
    def warm_count(self) -> int:
        return self._warm.count

    def _evict_warm(self) -> None:
        kernel = self._warm.evict()
        if kernel is not None:
            self._spawn_dispose(kernel)

    async def _start_warm(self, kernel_name: str) -> Kernel:
        return await self._launch(kernel_name, await self.spec(kernel_name), Launch())

    async def fill_warm_pool(self) -> None:
        """Start the warm pool and wait until it is ready (startup)."""
        await self._warm.fill()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _spawn_dispose(self, kernel: Kernel) -> None:
        self._spawn_disposal(self._dispose(kernel))

    def _spawn_disposal(self, coro: Any) -> asyncio.Task[Any]:
        """A shutdown in a task of the service's own, which close() lets finish."""
        task = self._spawn(coro)
        self._disposals.add(task)
        task.add_done_callback(self._disposals.discard)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        # A waiting caller gets the exception too; one that went away must not leave it unretrieved.
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.debug("background task failed: %r", exc)

    # -- operations ---------------------------------------------------------------------------
    # Restart, interrupt and shutdown of one kernel take its lock, so they run one after another (as
    # jupyter_client's pending state makes them). Shutdown unlists the kernel at once: it then waits for
    # a restart in progress to finish, and a step queued behind it finds the kernel gone (404).
    @contextlib.asynccontextmanager
    async def _exclusive(self, kernel_id: str) -> AsyncIterator[Kernel]:
        kernel = self.get(kernel_id)
        async with kernel.lock:
            if self._kernels.get(kernel_id) is not kernel:
                raise KernelNotFound(kernel_id)
            yield kernel

    async def interrupt(self, kernel_id: str) -> None:
        async with self._exclusive(kernel_id) as kernel:
            await kernel.interrupt()
            self.events.emit(KernelEventKind.INTERRUPTED, kernel.id, kernel.name)

    async def restart(self, kernel_id: str) -> Kernel:
        async with self._exclusive(kernel_id) as kernel:
            try:
                async with asyncio.timeout(self.policy.start_timeout):
                    await kernel.manager.restart_kernel(now=False)
                    kernel.reconnect()  # a remote kernel comes back elsewhere: every socket follows it
                    kernel.notify("restarted")
                    await kernel.executor.wait_ready(self.policy.start_timeout)
            except TimeoutError:
                raise KernelStartFailed("The kernel did not come back after restart") from None
            kernel.execution_state = "idle"
            kernel.restarts += 1
            self.events.emit(KernelEventKind.RESTARTED, kernel.id, kernel.name)
            return kernel

    async def shutdown(self, kernel_id: str, *, culled: bool = False) -> None:
        kernel = self._kernels.pop(kernel_id, None)
        if kernel is None:
            raise KernelNotFound(kernel_id)
        self._stopping += 1  # its place is free once the provisioner confirms it is gone
        # The shutdown runs to its end whatever happens to the caller (a request uvicorn cancels, the
        # culler stopped at shutdown): cut short, it would leave the kernel's process and manager behind.
        await asyncio.shield(self._spawn_disposal(self._shut_down(kernel, culled)))

    async def _shut_down(self, kernel: Kernel, culled: bool) -> None:
        try:
            async with kernel.lock:
                await self._dispose(kernel)
        finally:
            self._stopping -= 1
            if kernel.tenant is not None:
                self.tenants.release(kernel.tenant)
        log.info("kernel %s shut down", kernel.id)
        kind = KernelEventKind.CULLED if culled else KernelEventKind.SHUTDOWN
        self.events.emit(kind, kernel.id, kernel.name)

    def stats(self) -> KernelServiceStats:
        """A snapshot of what the service holds, for probes, metrics and the admin page."""
        return KernelServiceStats(
            running=len(self._kernels),
            starting=self._starting,
            warm=self.warm_count,
            warm_starting=self._warm.starting,
            warm_target=self.policy.warm_pool,
            private=len(self._private),
            max_kernels=self.policy.max_kernels,
            stopping=self._stopping,
            shutdown_failures=self._shutdown_failure_count,
        )

    async def _dispose(self, kernel: Kernel) -> None:
        if kernel not in self._live:
            return  # already reaped
        kernel.notify("shutdown")
        await kernel.close()
        try:
            gone = await kernel.shutdown()
        finally:
            self._live.discard(kernel)
        if gone:
            self._launcher.ports.release(kernel.leased_ports)
        else:
            self._shutdown_failure_count += 1
            self.shutdown_failures.append(ShutdownFailure(kernel.id, kernel.name, time.time()))

    async def _reap(self, kernel: Kernel) -> None:
        """Shut a kernel down at close(), after the lifecycle step it is in (bounded: then regardless)."""
        try:
            await asyncio.wait_for(kernel.lock.acquire(), self.policy.shutdown_timeout)
        except TimeoutError:
            log.warning("kernel %s is still busy restarting; shutting it down anyway", kernel.id)
            await self._dispose(kernel)
            return
        try:
            await self._dispose(kernel)
        finally:
            kernel.lock.release()

    async def close(self) -> None:
        """Refuse new starts, stop those in flight, reap every kernel ever launched, close the ZMQ context."""
        self._closing = True
        tasks = list(self._tasks)
        for task in tasks:
            if task not in self._disposals:  # a shutdown in progress is let finish
                task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._kernels.clear()
        self._warm.clear()
        self._private.clear()
        await asyncio.gather(*(self._reap(k) for k in list(self._live)), return_exceptions=True)
        self.context.destroy(linger=0)

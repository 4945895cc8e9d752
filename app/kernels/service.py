"""The kernel service: start (name policy, env policy, limits, seeding, warm pool), list, restart, stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpec, KernelSpecManager, NoSuchKernel
from traitlets.config import Config

from app.errors import (
    Forbidden,
    KernelLimitReached,
    KernelNotFound,
    KernelSpecNotFound,
    KernelStartFailed,
    KernelUnavailable,
    SeedFailed,
)
from app.kernels.channels import new_context
from app.kernels.environment import kernel_environment
from app.kernels.events import KernelEventKind, KernelEvents
from app.kernels.executor import KernelExitedEarly
from app.kernels.hub import Replay
from app.kernels.ids import new_id
from app.kernels.kernel import Deadlines, Kernel
from app.kernels.manager import GatewayKernelManager
from app.kernels.seed import Seed
from app.kernels.tenants import TenantPolicy, Tenants, kernel_username

log = logging.getLogger(__name__)

SHUTTING_DOWN = "The gateway is shutting down"
# A kernel can lose one of its ports between the moment jupyter_client picks it (bind to port 0, release)
# and the moment the kernel binds it, e.g. to an outgoing connection's ephemeral port; it then exits at
# once. Such a start is tried again with fresh ports, within the same start deadline.
START_ATTEMPTS = 3
_PASSED_ON = (SeedFailed, KernelExitedEarly, TimeoutError, Forbidden)  # failures reported as they are
FAILURES_KEPT = 100


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
    interrupt_timeout: float = 10.0
    shutdown_timeout: float = 15.0
    kernel_id_prefix: str = ""
    tenants: TenantPolicy = field(default_factory=TenantPolicy)

    @property
    def deadlines(self) -> Deadlines:
        return Deadlines(self.interrupt_timeout, self.shutdown_timeout, self.start_timeout)


@dataclass(frozen=True)
class ShutdownFailure:
    """A kernel whose provisioner did not confirm it was gone (a remote process may be left running)."""

    kernel_id: str
    kernel_name: str
    at: float


@dataclass(frozen=True)
class Launch:
    """What one kernel start needs besides its kernelspec."""

    env: Mapping[str, str] | None = None  # the client's `env` (KG's policy applies)
    seed: Seed | None = None  # a notebook service's startup cells, instead of KG_SEED_URI's
    extra_env: Mapping[str, str] | None = None  # a notebook service's own variables
    cwd: str | None = None  # a notebook service's data directory


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


class _LifecycleEvents:
    """Turns a kernel's automatic restarts and death into service events."""

    def __init__(self, events: KernelEvents, kernel: Kernel) -> None:
        self.events = events
        self.kernel = kernel

    def on_iopub(self, message: object) -> None:
        pass

    def on_lifecycle(self, event: str) -> None:
        kind = {"restarting": KernelEventKind.AUTO_RESTARTED, "dead": KernelEventKind.DIED}.get(event)
        if kind is not None:
            self.events.emit(kind, self.kernel.id, self.kernel.name)


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
        self._warm: dict[str, deque[Kernel]] = {}
        self._warm_starting = 0
        self._private: set[Kernel] = set()
        self._live: set[Kernel] = set()  # every kernel launched and not yet reaped, listed or not
        self._tasks: set[asyncio.Task[Any]] = set()
        self._disposals: set[asyncio.Task[Any]] = set()
        self._config = Config(
            {
                # A kernel that died is restarted on the same ports, which every socket the gateway
                # holds to it reconnects to (jupyter_client would pick new ones, unknown to them).
                "KernelRestarter": {"time_to_dead": policy.restart_poll, "random_ports_until_alive": False},
                "KernelManager": {"shutdown_wait_time": policy.shutdown_wait},
            }
        )
        self._closing = False
        self.events = KernelEvents()

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
        return len(self._kernels) + self._starting + self._stopping + self.warm_count + self._warm_starting

    async def start(self, name: str | None = None, env: Mapping[str, str] | None = None) -> Kernel:
        """Start (or take from the warm pool) a ready, seeded kernel and register it."""
        self._check_open()
        kernel_name, spec = await self.resolve(name)
        self._check_open()
        user = kernel_username(env)
        self.tenants.admit(user, spec.display_name)
        warm = self._take_warm(kernel_name) if env is None else None
        try:
            # taking a warm kernel adds no process, so it needs no eviction
            self._reserve(evict=warm is None)
        except KernelLimitReached:
            self.tenants.release(user)
            if warm is not None:
                self._warm[kernel_name].appendleft(warm)
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
        self._refill_warm(kernel_name)
        log.info("kernel %s started (%s)", kernel.id, kernel_name)
        self.events.emit(KernelEventKind.STARTED, kernel.id, kernel_name)
        return kernel

    async def _launch(self, kernel_name: str, spec: KernelSpec, launch: Launch) -> Kernel:
        """Start a kernel in a task the service owns, so that close() can stop it and reap what it made,
        even when the caller (a request uvicorn cancels at shutdown) is gone."""
        self._check_open()
        task = self._spawn(self._start_kernel(kernel_name, spec, launch))
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

    async def _start_kernel(self, kernel_name: str, spec: KernelSpec, launch: Launch) -> Kernel:
        try:
            return await self._start_attempts(kernel_name, spec, launch)
        except Exception as exc:  # not a cancelled start (shutdown): that is no failure of the kernel
            self.events.emit(KernelEventKind.START_FAILED, "", kernel_name, type(exc).__name__)
            raise

    async def _start_attempts(self, kernel_name: str, spec: KernelSpec, launch: Launch) -> Kernel:
        try:
            async with asyncio.timeout(self.policy.start_timeout):
                for attempt in range(1, START_ATTEMPTS + 1):
                    try:
                        return await self._start_once(kernel_name, spec, launch)
                    except KernelExitedEarly:
                        log.warning("kernel %s exited while starting (attempt %d)", kernel_name, attempt)
        except TimeoutError:
            raise KernelStartFailed(f"Kernel {kernel_name} did not start in time") from None
        raise KernelStartFailed(f"Kernel {kernel_name} failed to start")

    async def _start_once(self, kernel_name: str, spec: KernelSpec, launch: Launch) -> Kernel:
        kernel_env = kernel_environment(
            launch.env,
            process_env=os.environ,
            env_whitelist=self.policy.env_whitelist,
            process_whitelist=self.policy.env_process_whitelist,
        )
        kernel_env.update(launch.extra_env or {})
        seed = launch.seed or self.seed
        launch_options: dict[str, Any] = {"cwd": launch.cwd} if launch.cwd else {}
        # The API's id is the provisioner's: KERNEL_ID, remote log files, pod and container names match.
        kernel_id = new_id(self.policy.kernel_id_prefix)
        manager = GatewayKernelManager(
            kernel_id=kernel_id,
            kernel_name=kernel_name,
            kernel_spec_manager=self.specs,
            config=self._config,
            autorestart=False,
        )
        manager._kernel_spec = spec  # read off the loop; jupyter_client would read it again, on the loop
        replay = Replay(self.policy.replay_seconds, self.policy.replay_sessions, self.policy.replay_bytes)
        kernel = Kernel(
            kernel_id, kernel_name, manager, self.context, replay=replay, deadlines=self.policy.deadlines
        )
        self._live.add(kernel)
        try:
            await manager.start_kernel(env=kernel_env, **launch_options)
            kernel.open()
            kernel.add_listener(_LifecycleEvents(self.events, kernel))
            await kernel.executor.wait_ready(self.policy.start_timeout)
            # Only now restart a kernel that dies: one that dies before it answers (it could not bind a
            # port) is started afresh on new ports instead of being restarted on the same ones. From here
            # on, a kernel dying while seeded is reported by the restarter, failing the seed at once.
            manager.autorestart = True
            manager.start_restarter()
            kernel.watch_restarts()
            if seed is not None and seed.applies_to(kernel_name):
                await seed.run(kernel.executor, self.policy.start_timeout)
        except BaseException as exc:
            await self._dispose(kernel)
            if isinstance(exc, PermissionError):  # a provisioner's refusal (e.g. its authorized users)
                raise Forbidden(str(exc)) from None
            if isinstance(exc, _PASSED_ON) or not isinstance(exc, Exception):
                raise
            log.exception("kernel %s failed to start", kernel_name)
            raise KernelStartFailed(f"Kernel {kernel_name} failed to start") from None
        kernel.execution_state = "idle"
        return kernel

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
    def warm_kernels(self) -> list[Kernel]:
        return [kernel for pool in self._warm.values() for kernel in pool]

    @property
    def warm_count(self) -> int:
        return sum(len(pool) for pool in self._warm.values())

    def _take_warm(self, kernel_name: str) -> Kernel | None:
        pool = self._warm.get(kernel_name)
        return pool.popleft() if pool else None

    def _evict_warm(self) -> None:
        for pool in self._warm.values():
            if pool:
                self._spawn_dispose(pool.pop())
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
            kernel = await self._launch(kernel_name, await self.spec(kernel_name), Launch())
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
        task.add_done_callback(self._task_done)
        return task

    def _spawn_dispose(self, kernel: Kernel) -> None:
        task = self._spawn(self._dispose(kernel))
        self._disposals.add(task)
        task.add_done_callback(self._disposals.discard)

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
        try:
            async with kernel.lock:
                await self._dispose(kernel)
        finally:
            self._stopping -= 1
            if kernel.tenant is not None:
                self.tenants.release(kernel.tenant)
        log.info("kernel %s shut down", kernel_id)
        kind = KernelEventKind.CULLED if culled else KernelEventKind.SHUTDOWN
        self.events.emit(kind, kernel.id, kernel.name)

    def stats(self) -> KernelServiceStats:
        """A snapshot of what the service holds, for probes, metrics and the admin page."""
        return KernelServiceStats(
            running=len(self._kernels),
            starting=self._starting,
            warm=self.warm_count,
            warm_starting=self._warm_starting,
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
        if not gone:
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

"""Idle culling with jupyter_server's semantics (MappingKernelManager.cull_*).

Every `interval` seconds each listed kernel is checked: a dead kernel is shut down; otherwise it is shut
down when it has been idle longer than the timeout (the kernelspec's `metadata.cull_idle_timeout`, else
the gateway's), and it is not busy (unless `cull_busy`), and it has no connection (unless
`cull_connected`). Warm and notebook-pool kernels are not listed, so they are never culled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

from app.errors import GatewayError
from app.kernels.kernel import Kernel
from app.kernels.service import KernelService

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 300.0  # jupyter_server's cull_interval_default


@dataclass(frozen=True)
class CullPolicy:
    idle_timeout: float = 0.0  # seconds; 0 or less disables culling
    interval: float = DEFAULT_INTERVAL
    connected: bool = False
    busy: bool = False

    @property
    def enabled(self) -> bool:
        return self.idle_timeout > 0


class Culler:
    """The background task that culls idle kernels; start() and stop() are called by the lifespan."""

    def __init__(self, kernels: KernelService, policy: CullPolicy) -> None:
        self.kernels = kernels
        self.policy = policy
        self.interval = policy.interval
        if policy.interval <= 0:
            log.warning("invalid cull interval %s; using %s s", policy.interval, DEFAULT_INTERVAL)
            self.interval = DEFAULT_INTERVAL
        self._task: asyncio.Task[None] | None = None
        self._spec_timeouts: dict[str, float] = {}  # kernelspec name -> its metadata's cull_idle_timeout

    def timeout_for(self, kernel: Kernel) -> float:
        """The kernelspec's own cull_idle_timeout wins over the gateway's, as in jupyter_server."""
        return self._spec_timeouts.get(kernel.name, self.policy.idle_timeout)

    async def _learn_spec_timeouts(self, names: set[str]) -> None:
        """Read each kernelspec's metadata once, off the event loop (kernelspecs are files)."""
        for name in names - self._spec_timeouts.keys():
            try:
                spec = await self.kernels.spec(name)  # read off the event loop
            except GatewayError:
                continue
            value = (getattr(spec, "metadata", None) or {}).get("cull_idle_timeout")
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self._spec_timeouts[name] = float(value)
            else:
                self._spec_timeouts[name] = self.policy.idle_timeout

    def idle_seconds(self, kernel: Kernel, now: float | None = None) -> float:
        return (now or time.time()) - kernel.last_activity.timestamp()

    def countdown(self, kernel: Kernel) -> float | None:
        """Seconds until this kernel becomes cullable by idleness (None when culling does not apply)."""
        timeout = self.timeout_for(kernel)
        if not self.policy.enabled or timeout <= 0:
            return None
        if (kernel.connections and not self.policy.connected) or (
            kernel.execution_state == "busy" and not self.policy.busy
        ):
            return None
        return max(0.0, timeout - self.idle_seconds(kernel))

    def should_cull(self, kernel: Kernel, now: float) -> bool:
        timeout = self.timeout_for(kernel)
        if timeout <= 0:
            return False
        return (
            self.idle_seconds(kernel, now) > timeout
            and (self.policy.busy or kernel.execution_state != "busy")
            and (self.policy.connected or not kernel.connections)
        )

    async def cull_once(self) -> list[str]:
        """Check every listed kernel once; return the ids shut down."""
        culled = []
        kernels = self.kernels.running()
        await self._learn_spec_timeouts({k.name for k in kernels})
        now = time.time()
        for kernel in kernels:
            dead = kernel.execution_state == "dead"
            if not dead and not self.should_cull(kernel, now):
                continue
            log.warning(
                "culling %s kernel %s (%s) with %d connections after %d s of inactivity",
                kernel.execution_state,
                kernel.id,
                kernel.name,
                kernel.connections,
                self.idle_seconds(kernel, now),
            )
            try:
                await self.kernels.shutdown(kernel.id, culled=True)
            except GatewayError as exc:  # already gone (shut down meanwhile)
                log.info("kernel %s was not culled: %s", kernel.id, exc)
                continue
            culled.append(kernel.id)
        return culled

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.cull_once()
            except Exception:  # one bad pass must not end culling for the gateway's lifetime
                log.exception("culling pass failed")

    def start(self) -> None:
        if self.policy.enabled and self._task is None:
            log.info(
                "culling kernels idle for %g s, checked every %g s (connected: %s, busy: %s)",
                self.policy.idle_timeout,
                self.interval,
                self.policy.connected,
                self.policy.busy,
            )
            self._task = asyncio.get_running_loop().create_task(self._run(), name="kernel-culler")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

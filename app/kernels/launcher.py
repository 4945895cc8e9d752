"""Launching one kernel: env policy, provisioner id, readiness, restarter, seeding, early-exit retries."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from jupyter_client.kernelspec import KernelSpec, KernelSpecManager
from traitlets.config import Config

from app.errors import Forbidden, KernelStartFailed, SeedFailed
from app.kernels.environment import kernel_environment
from app.kernels.events import KernelEventKind, KernelEvents
from app.kernels.executor import KernelExitedEarly
from app.kernels.hub import Replay
from app.kernels.ids import new_id
from app.kernels.kernel import Kernel
from app.kernels.manager import GatewayKernelManager
from app.kernels.policy import KernelPolicy
from app.kernels.ports import PortPool, PortsExhausted
from app.kernels.seed import Seed

if TYPE_CHECKING:
    import zmq

log = logging.getLogger(__name__)

# A kernel can lose one of its ports between the moment jupyter_client picks it (bind to port 0, release)
# and the moment the kernel binds it, e.g. to an outgoing connection's ephemeral port; it then exits at
# once. Such a start, or one that failed unexpectedly (logged with its traceback), is tried again with
# fresh ports, within the same start deadline. A refusal, a failing seed cell or the deadline is final.
START_ATTEMPTS = 3
LOCAL_PROVISIONER = "local-provisioner"
_PASSED_ON = (SeedFailed, KernelExitedEarly, TimeoutError, Forbidden)  # failures reported as they are


@dataclass(frozen=True)
class Launch:
    """What one kernel start needs besides its kernelspec."""

    env: Mapping[str, str] | None = None  # the client's `env` (KG's policy applies)
    seed: Seed | None = None  # a notebook service's startup cells, instead of KG_SEED_URI's
    extra_env: Mapping[str, str] | None = None  # a notebook service's own variables
    cwd: str | None = None  # a notebook service's data directory


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


class KernelLauncher:
    """Starts one ready, seeded kernel. The service owns it: `track` counts it live as soon as it exists
    (so close() reaps it), `dispose` shuts down one that failed to start."""

    def __init__(
        self,
        policy: KernelPolicy,
        specs: KernelSpecManager,
        context: zmq.Context[Any],
        events: KernelEvents,
        seed: Seed | None,
        *,
        track: Callable[[Kernel], None],
        dispose: Callable[[Kernel], Awaitable[None]],
    ) -> None:
        self.policy = policy
        self.specs = specs
        self.context = context
        self.events = events
        self.seed = seed
        self._track = track
        self.ports = PortPool(policy.port_range)
        self._dispose = dispose
        self._config = Config(
            {
                # A kernel that died is restarted on the same ports, which every socket the gateway
                # holds to it reconnects to (jupyter_client would pick new ones, unknown to them).
                "KernelRestarter": {"time_to_dead": policy.restart_poll, "random_ports_until_alive": False},
                "KernelManager": {"shutdown_wait_time": policy.shutdown_wait},
            }
        )

    async def start(self, kernel_name: str, spec: KernelSpec, launch: Launch) -> Kernel:
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
                    except PortsExhausted:
                        raise
                    except (KernelExitedEarly, KernelStartFailed) as exc:  # KernelStartFailed: logged
                        log.warning("kernel %s did not start (attempt %d): %s", kernel_name, attempt, exc)
        except TimeoutError:
            raise KernelStartFailed(f"Kernel {kernel_name} did not start in time") from None
        raise KernelStartFailed(f"Kernel {kernel_name} failed to start")

    def _lease_ports(self, manager: GatewayKernelManager, spec: KernelSpec) -> tuple[int, ...]:
        """Give a kernel of jupyter_client's local provisioner its ports from the gateway's range (see
        app/kernels/ports.py); remote provisioners choose their own."""
        provisioner = (getattr(spec, "metadata", None) or {}).get("kernel_provisioner") or {}
        local = provisioner.get("provisioner_name", LOCAL_PROVISIONER) == LOCAL_PROVISIONER
        if not (self.ports.range.enabled and local and manager.transport == "tcp"):
            return ()
        ports = self.ports.lease(manager.ip)
        manager.cache_ports = False  # jupyter_client keeps preset ports, across restarts too
        (manager.shell_port, manager.iopub_port, manager.stdin_port) = ports[:3]
        (manager.control_port, manager.hb_port) = ports[3:]
        return ports

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
        leased = self._lease_ports(manager, spec)
        replay = Replay(self.policy.replay_seconds, self.policy.replay_sessions, self.policy.replay_bytes)
        kernel = Kernel(
            kernel_id, kernel_name, manager, self.context, replay=replay, deadlines=self.policy.deadlines
        )
        kernel.leased_ports = leased
        self._track(kernel)
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

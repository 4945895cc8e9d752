"""What the kernel service needs from Settings: limits, name and env policy, deadlines, replay, warm pool."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.kernels.kernel import Deadlines
from app.kernels.ports import PortRange
from app.kernels.tenants import TenantPolicy


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
    port_range: PortRange = field(default_factory=PortRange.below_ephemeral)  # local kernels' ports
    tenants: TenantPolicy = field(default_factory=TenantPolicy)

    @property
    def deadlines(self) -> Deadlines:
        return Deadlines(self.interrupt_timeout, self.shutdown_timeout, self.start_timeout)

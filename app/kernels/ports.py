"""Ports for local kernels, from a range the system never hands to outgoing connections.

jupyter_client picks a kernel's five ports by binding port 0 and releasing it, so they lie in the ephemeral
range (`net.ipv4.ip_local_port_range`). Until the kernel binds them, any outgoing connection can take one as
its source port: the gateway's own ZMQ sockets reconnect every 100 ms to kernels that are still starting,
so with many starts at once this happens. ipykernel then fails with "Address already in use" and, when it
fails on iopub, hangs in its exit handler instead of exiting. Ports below the ephemeral range are taken only
by an explicit bind, which the lease checks for.
"""

from __future__ import annotations

import errno
import random
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from app.errors import KernelStartFailed

PORTS_PER_KERNEL = 5  # shell, iopub, stdin, control, heartbeat
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_LOW = 32768  # Linux's default when the range cannot be read
DEFAULT_SPAN = 10000  # ports below the ephemeral range used by default


class PortsExhausted(KernelStartFailed):
    """Every port of the range is leased or bound: final, not worth another attempt."""


@dataclass(frozen=True)
class PortRange:
    """Inclusive bounds; `lower == upper == 0` leaves port choice to jupyter_client (ephemeral ports)."""

    lower: int
    upper: int

    @property
    def enabled(self) -> bool:
        return self.upper > 0

    @classmethod
    def from_setting(cls, bounds: tuple[int, int] | None) -> PortRange:
        """FASTKG_KERNEL_PORT_RANGE as Settings parsed it: None is `auto`, below the ephemeral range."""
        return cls(*bounds) if bounds is not None else cls.below_ephemeral()

    @classmethod
    def below_ephemeral(cls) -> PortRange:
        try:
            low = int(EPHEMERAL_RANGE.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            low = DEFAULT_EPHEMERAL_LOW
        upper = max(low - 1, 1024 + PORTS_PER_KERNEL)
        return cls(max(1024, upper - DEFAULT_SPAN + 1), upper)


def _bindable(ip: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((ip, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


class PortPool:
    """Leases distinct free ports of a range to the gateway's local kernels, until each kernel is gone."""

    def __init__(self, ports: PortRange, rng: random.Random | None = None) -> None:
        self.range = ports
        self._leased: set[int] = set()
        self._rng = rng or random.Random()  # noqa: S311  # spreads starts over the range; not a secret

    def lease(self, ip: str, count: int = PORTS_PER_KERNEL) -> tuple[int, ...]:
        """`count` ports free on `ip` now and leased to no other kernel (a random start, then in order)."""
        lower, upper = self.range.lower, self.range.upper
        span = upper - lower + 1
        start = self._rng.randrange(span)
        chosen: list[int] = []
        for offset in range(span):
            port = lower + (start + offset) % span
            if port in self._leased or not _bindable(ip, port):
                continue
            chosen.append(port)
            if len(chosen) == count:
                self._leased.update(chosen)
                return tuple(chosen)
        raise PortsExhausted(f"No free kernel ports left in {lower}..{upper} (FASTKG_KERNEL_PORT_RANGE)")

    def release(self, ports: Iterable[int]) -> None:
        self._leased.difference_update(ports)

    @property
    def leased(self) -> int:
        return len(self._leased)

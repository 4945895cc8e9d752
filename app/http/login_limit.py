"""Failed admin logins per client address: after `attempts` wrong tokens within `window` seconds, an address
may not try again until the oldest of them is `window` old, so the token cannot be guessed at full speed.

The table is bounded: it keeps the `capacity` addresses that failed most recently. An IPv6 client counts by
its /64 network (one host usually holds a whole /64, so single addresses would be free to rotate).
"""

from __future__ import annotations

import ipaddress
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from app.http.asgi import Scope

CAPACITY = 4096


def client_address(scope: Scope) -> str:
    """The client's address: the socket peer, or with KG_TRUST_XHEADERS what the nearest proxy reports
    (ForwardedHeadersMiddleware has put it in the scope)."""
    peer = scope.get("client")
    return str(peer[0]) if peer else ""


def bucket(address: str) -> str:
    """What failures are counted by: the IPv4 address, or the IPv6 address's /64."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class LoginLimiter:
    """Recent failure times per address (at most `attempts` each), least recently failed first."""

    def __init__(
        self,
        attempts: int,
        window: float,
        capacity: int = CAPACITY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.attempts = attempts
        self.window = window
        self.capacity = capacity
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, address: str) -> float | None:
        """Seconds until `address` may try a token again; None when it may now."""
        key = bucket(address)
        failures = self._failures.get(key)
        if failures is None:
            return None
        now = self._clock()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
            return None
        return failures[0] + self.window - now if len(failures) >= self.attempts else None

    def failed(self, address: str) -> bool:
        """Count a wrong token from `address`; True when that was its last allowed attempt."""
        key = bucket(address)
        failures = self._failures.pop(key, None) or deque(maxlen=self.attempts)
        failures.append(self._clock())
        self._failures[key] = failures  # now the most recent
        while len(self._failures) > self.capacity:
            self._failures.popitem(last=False)
        return self.retry_after(address) is not None

    def __len__(self) -> int:
        return len(self._failures)

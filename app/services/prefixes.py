"""Which service a path belongs to: the table of full prefixes, where the longest prefix a path lies under
wins (one dict lookup per path segment, whatever the number of services), and the rule a new prefix obeys.

The table is replaced whole on every change, never mutated, so a lookup never sees a half-made change.
"""

from __future__ import annotations

from collections.abc import Iterable

from app.errors import Conflict
from app.services.service import Service
from app.services.spec import overlaps, reserved_clash


class PrefixTable:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self._routes: dict[str, Service] = {}  # full prefix -> service

    def match(self, path: str) -> Service | None:
        routes = self._routes
        candidate = path
        while candidate:
            service = routes.get(candidate)
            if service is not None:
                return service
            candidate = candidate[: candidate.rfind("/")] if "/" in candidate else ""
        return routes.get("")

    def replace(self, services: Iterable[Service]) -> None:
        self._routes = {self.base_url + s.prefix: s for s in services}


def check_prefix(name: str, prefix: str, services: Iterable[Service]) -> None:
    """Conflict if `prefix` is, lies under or holds a gateway path or another service's prefix (also one
    a deploy in progress is moving that service to)."""
    clash = reserved_clash(prefix)
    if clash is not None:
        raise Conflict(f"Prefix {prefix} collides with the gateway's {clash}")
    for other in services:
        taken = [other.prefix] if other.holds_prefix else []
        taken += [other.pending_prefix] if other.pending_prefix else []
        if other.name != name and any(overlaps(prefix, p) for p in taken):
            raise Conflict(f"Prefix {prefix} collides with service {other.name} at {other.prefix}")

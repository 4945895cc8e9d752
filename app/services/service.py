"""One notebook service: its version history, the deployment serving it, its state and last error."""

from __future__ import annotations

import asyncio
from enum import StrEnum
from typing import Any

from app.services.deployment import Deployment
from app.services.spec import ServiceSpec
from app.services.traffic import Traffic
from app.services.versions import History


class State(StrEnum):
    DEPLOYING = "deploying"
    SERVING = "serving"
    FAILED = "failed"
    DRAINING = "draining"


class Service:
    """Swapped atomically: `active` is read once per request, so a request sees one version throughout."""

    def __init__(self, spec: ServiceSpec, history: History, origin: str = "api") -> None:
        self.name = spec.name
        self.spec = spec  # the active version's settings (or the first deploy's, while deploying)
        self.history = history
        self.origin = origin  # "api" or "watcher": who owns the service's lifetime
        self.active: Deployment | None = None
        self.state = State.DEPLOYING
        self.error: str | None = None
        self.pending_prefix: str | None = None  # claimed by a deploy in progress that moves the service
        # False for a service that could not be deployed at all (bad settings, a prefix taken): listed as
        # failed with its error, its prefix the one it asks for, but neither routed nor reserved
        self.holds_prefix = True
        self.lock = asyncio.Lock()  # one change (deploy, rollback, undeploy) at a time
        self.traffic = Traffic()  # over every version, counted by the dispatcher

    @property
    def prefix(self) -> str:
        return self.spec.prefix

    def stats(self) -> dict[str, Any]:
        """The service as the REST API shows it (field names are a contract)."""
        active = self.active
        pool = active.pool.stats() if active else None
        return {
            "name": self.name,
            "prefix": self.prefix,
            "state": self.state.value,
            "version": active.version.summary() if active else None,
            "kernel_name": active.kernel_name if active else self.spec.kernel_name,
            "endpoints": [{"method": e.verb, "path": e.path} for e in active.endpoints] if active else [],
            "pool": {
                "min": self.spec.pool_min,
                "max": self.spec.pool_max,
                "size": pool.size if pool else 0,
                "busy": pool.busy if pool else 0,
                "idle": pool.idle if pool else 0,
            },
            "error": self.error,
            "traffic": self.traffic.stats(),
        }

    def versions(self) -> list[dict[str, Any]]:
        active_id = self.active.version.id if self.active else None
        return [{**v.summary(), "active": v.id == active_id} for v in self.history.versions]

    def record(self) -> dict[str, Any]:
        """What the state directory keeps about this service."""
        return {
            "name": self.name,
            "origin": self.origin,
            "active": self.active.version.id if self.active else None,
            "next_id": self.history.next_id,
            "spec": self.spec.to_json(),
            "versions": [v.record() for v in self.history.versions],
        }

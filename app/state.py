"""The gateway's state, built by the lifespan: one typed object the REST API, the admin page, /metrics
and the probes all read (through snapshots, never private fields)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from app.config import Settings
from app.kernels.culler import Culler
from app.kernels.service import KernelService
from app.kernels.sessions import SessionStore
from app.notebook_api.service import NotebookService


class Phase(StrEnum):
    STARTING = "starting"
    READY = "ready"
    STOPPING = "stopping"


@dataclass
class WebSocketTraffic:
    """Monotonic counters of the kernel websockets (the open count is read from the kernels)."""

    connections: int = 0
    to_kernel: int = 0  # frames from clients
    to_client: int = 0  # frames to clients


@dataclass
class GatewayState:
    settings: Settings
    kernels: KernelService
    sessions: SessionStore
    culler: Culler
    root_notebook: Callable[[], NotebookService | None] = field(default=lambda: None)
    service_notebooks: Callable[[], list[NotebookService]] = field(default=list)
    phase: Phase = Phase.STARTING
    started_at: float = field(default_factory=time.time)
    traffic: WebSocketTraffic = field(default_factory=WebSocketTraffic)

    @property
    def notebook(self) -> NotebookService | None:
        """The root notebook's version serving now (KG_SEED_URI's, in notebook-http mode)."""
        return self.root_notebook()

    def notebooks(self) -> list[NotebookService]:
        """Every notebook serving now: the root notebook and each service's active version (once each)."""
        serving = self.service_notebooks()
        root = self.notebook
        if root is not None and all(notebook is not root for notebook in serving):
            serving = [root, *serving]
        return serving

    @property
    def uptime(self) -> float:
        return time.time() - self.started_at

    def readiness(self) -> str | None:
        """None when the gateway can serve; otherwise why not (for /readyz)."""
        if self.phase is Phase.STARTING:
            return "starting: kernels and pools are being filled"
        if self.phase is Phase.STOPPING:
            return "shutting down"
        notebook = self.notebook
        if notebook is not None:
            pool = notebook.pool.stats()
            if pool.members < pool.min:
                return f"notebook pool {notebook.name!r} refilling: {pool.members} of {pool.min} kernels"
        return None

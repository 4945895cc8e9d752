"""The admin API's wire models and how they are built from the gateway state (the same objects the
REST API reads)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from pydantic import BaseModel, Field, TypeAdapter

from app import __version__
from app.config import Personality
from app.kernels.kernel import Kernel
from app.kernels.usage import Usage, UsageProbe
from app.routers.service_models import ServiceModel
from app.services.runtime import ServicesRuntime
from app.state import GatewayState


class AdminKernel(BaseModel):
    id: str
    name: str = Field(description="Kernelspec")
    state: str
    connections: int
    started: datetime
    last_activity: datetime
    idle_seconds: float
    cull_in_seconds: float | None = Field(description="Seconds until culled when idle; null: not culled")
    restarts: int
    owner: str | None = Field(description="KERNEL_USERNAME from the start request")
    holder: str | None = Field(description="What holds the kernel: a session, the warm pool, a notebook")
    actions: bool = Field(description="Whether interrupt, restart and shut down apply (listed kernels)")
    cpu_percent: float | None
    memory_bytes: int | None
    usage_source: str | None = Field(description="kernel (usage_request) or process (psutil)")


class AdminOverview(BaseModel):
    version: str
    uptime_seconds: float
    ready: bool
    readiness: str | None
    kernels: int
    max_kernels: int | None
    warm: int
    pool_kernels: int
    stopping: int = Field(0, description="Kernels shut down, not yet confirmed gone by their provisioner")
    shutdown_failures: int = Field(0, description="Kernels whose provisioner never confirmed they were gone")
    cull_idle_timeout: float
    cull_interval: float
    cull_connected: bool
    cull_busy: bool
    base_url: str
    services: bool = Field(
        False, description="Whether notebook services are served (the event stream then sends `services`)"
    )


class AdminSnapshot(BaseModel):
    overview: AdminOverview
    kernels: list[AdminKernel]


class IdleShutdownRequest(BaseModel):
    # strict: a lax float reads `false` (and "0") as 0, which shuts down every idle kernel
    idle_seconds: float = Field(
        ge=0, strict=True, description="Shut down listed kernels idle longer than this"
    )


class IdleShutdownResult(BaseModel):
    shut_down: list[str]


class LoginRequest(BaseModel):
    token: str = Field(max_length=4096)


class AdminSession(BaseModel):
    token_required: bool
    authenticated: bool
    csrf_token: str = Field(description="Send back as X-CSRF-Token on state-changing admin calls")


def overview(gateway: GatewayState) -> AdminOverview:
    stats, settings = gateway.kernels.stats(), gateway.settings
    reason = gateway.readiness()
    return AdminOverview(
        version=__version__,
        uptime_seconds=round(gateway.uptime, 1),
        ready=reason is None,
        readiness=reason,
        kernels=stats.running,
        max_kernels=stats.max_kernels,
        warm=stats.warm,
        pool_kernels=stats.private,
        stopping=stats.stopping,
        shutdown_failures=stats.shutdown_failures,
        cull_idle_timeout=gateway.culler.policy.idle_timeout,
        cull_interval=gateway.culler.interval,
        cull_connected=settings.cull_connected,
        cull_busy=settings.cull_busy,
        base_url=settings.base_url,
        services=Personality.SERVICES in settings.personalities,
    )


SERVICE_ROWS = TypeAdapter(list[ServiceModel])


def service_rows(runtime: ServicesRuntime) -> str:
    """The services as JSON, exactly the rows GET /api/services answers ("" until the registry runs)."""
    if runtime.registry.kernels is None:
        return ""
    return SERVICE_ROWS.dump_json(SERVICE_ROWS.validate_python(runtime.registry.stats())).decode()


def _holders(gateway: GatewayState) -> dict[str, str]:
    return {
        session.kernel_id: f"session {session.path or session.name}"
        for session, _ in gateway.sessions.entries()
    }


async def kernel_rows(gateway: GatewayState, usage: UsageProbe, *, measure: bool = True) -> list[AdminKernel]:
    """Rows for every kernel; `measure=False` skips CPU and memory (a fast first render)."""
    holders = _holders(gateway)
    entries: list[tuple[Kernel, str | None, bool]] = [
        (k, holders.get(k.id), True) for k in gateway.kernels.running()
    ]
    entries += [(k, "warm pool", False) for k in gateway.kernels.warm_kernels()]
    if gateway.notebook is not None:
        entries += [(k, f"notebook {gateway.notebook.name}", False) for k in gateway.notebook.pool.members()]
    usages: list[Usage | None] = [None] * len(entries)
    if measure:
        usages = list(await asyncio.gather(*(usage.usage(kernel) for kernel, _, _ in entries)))
        usage.forget({kernel.id for kernel, _, _ in entries})
    now = datetime.now(UTC)
    rows = []
    for (kernel, holder, listed), measured in zip(entries, usages, strict=True):
        rows.append(
            AdminKernel(
                id=kernel.id,
                name=kernel.name,
                state=kernel.execution_state,
                connections=kernel.connections,
                started=datetime.fromtimestamp(kernel.started, UTC),
                last_activity=kernel.last_activity,
                idle_seconds=round((now - kernel.last_activity).total_seconds(), 1),
                cull_in_seconds=gateway.culler.countdown(kernel) if listed else None,
                restarts=kernel.restarts,
                owner=kernel.owner,
                holder=holder,
                actions=listed,
                cpu_percent=measured.cpu_percent if measured else None,
                memory_bytes=measured.memory_bytes if measured else None,
                usage_source=measured.source if measured else None,
            )
        )
    return rows

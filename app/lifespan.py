"""Startup and shutdown: build the kernel service, the root notebook (KG_SEED_URI's) and the services,
prespawn, and always reap kernels."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager, NoSuchKernel

from app.config import CellParser, Personality, Settings
from app.errors import ConfigurationError, GatewayError
from app.http.asgi import ASGIApp, Message, Receive, Scope, Send
from app.kernels.culler import Culler, CullPolicy
from app.kernels.policy import KernelPolicy
from app.kernels.ports import PortRange
from app.kernels.seed import Seed
from app.kernels.service import KernelService
from app.kernels.sessions import SessionStore
from app.kernels.tenants import TenantPolicy
from app.notebook_api.loader import LoadedNotebook, load_notebook
from app.notebook_api.parsers import NotebookError, ParsedNotebook
from app.notebook_api.service import parse_notebook
from app.plugins import GatewayServices, PluginPersonality, find_personalities, seed_filter, shut_down
from app.routers.notebook_slot import NotebookSlot, root_app_builder
from app.services.deployment import Deployment
from app.services.root import RootNotebook
from app.services.runtime import ServicesRuntime
from app.services.service import Service
from app.state import GatewayState, Phase

log = logging.getLogger(__name__)


def kernel_policy(settings: Settings) -> KernelPolicy:
    return KernelPolicy(
        max_kernels=settings.max_kernels,
        default_kernel_name=settings.default_kernel_name,
        force_kernel_name=settings.force_kernel_name,
        env_whitelist=settings.env_whitelist,
        env_process_whitelist=settings.env_process_whitelist,
        start_timeout=settings.kernel_start_timeout,
        replay_seconds=settings.replay_seconds,
        replay_sessions=settings.replay_sessions,
        replay_bytes=settings.replay_bytes,
        warm_pool=settings.warm_pool,
        restart_poll=settings.kernel_poll_interval,
        interrupt_timeout=settings.interrupt_timeout,
        shutdown_timeout=settings.shutdown_timeout,
        kernel_id_prefix=settings.kernel_id_prefix,
        port_range=PortRange.from_setting(settings.kernel_port_range),
        tenants=TenantPolicy(
            max_kernels_per_user=settings.max_kernels_per_user,
            authorized_users=frozenset(settings.authorized_users),
            unauthorized_users=frozenset(settings.unauthorized_users),
        ),
    )


@dataclass(frozen=True)
class SeedNotebook:
    """The KG_SEED_URI notebook, its kernelspec, and (for notebook-http) its endpoints."""

    notebook: LoadedNotebook
    kernel_name: str
    parsed: ParsedNotebook | None

    def seed(self, accept: Callable[[str], bool]) -> Seed:
        """The cells run on every new kernel: those the plug-ins accept (KG's should_seed_cell)."""
        sources = self.parsed.startup_sources if self.parsed else self.notebook.code_sources()
        return Seed(self.kernel_name, tuple(source for source in sources if accept(source)))


async def load_seed_notebook(settings: Settings, specs: KernelSpecManager) -> SeedNotebook | None:
    """Load and check KG_SEED_URI; every problem is a ConfigurationError with a one-line message."""
    if not settings.seed_uri:
        return None
    try:
        notebook = await load_notebook(settings.seed_uri)
        parsed = None
        if Personality.NOTEBOOK_HTTP in settings.personalities:
            parsed = parse_notebook(notebook, swagger=settings.parser is CellParser.SWAGGER)
    except NotebookError as exc:
        raise ConfigurationError(str(exc)) from None
    kernel_name = settings.force_kernel_name or notebook.kernel_name or settings.default_kernel_name
    kernel_name = kernel_name or NATIVE_KERNEL_NAME
    try:
        await asyncio.to_thread(specs.get_kernel_spec, kernel_name)
    except (NoSuchKernel, ValueError, OSError):
        raise ConfigurationError(
            f"the notebook needs kernelspec {kernel_name!r}, which is not installed"
        ) from None
    return SeedNotebook(notebook, kernel_name, parsed)


async def check_configuration(settings: Settings, specs: KernelSpecManager) -> None:
    """Raise ConfigurationError for settings the gateway cannot start with."""
    find_personalities(settings)
    await load_seed_notebook(settings, specs)


def cull_policy(settings: Settings) -> CullPolicy:
    return CullPolicy(
        idle_timeout=settings.cull_idle_timeout,
        interval=settings.cull_interval,
        connected=settings.cull_connected,
        busy=settings.cull_busy,
    )


def build_lifespan(
    settings: Settings, services: GatewayServices, plugins: Sequence[PluginPersonality] = ()
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        specs = KernelSpecManager()
        seed_notebook = await load_seed_notebook(settings, specs)
        seed = seed_notebook.seed(seed_filter(list(plugins))) if seed_notebook else None
        kernels = KernelService(kernel_policy(settings), specs, seed)
        app.state.kernels = kernels
        services.attach(kernels)
        app.state.sessions = SessionStore(kernels)
        gateway = GatewayState(settings, kernels, app.state.sessions, Culler(kernels, cull_policy(settings)))
        app.state.gateway = gateway
        root = root_notebook(settings, seed_notebook, plugins)
        fixed: Deployment | None = None  # the root notebook's one version, without the services personality
        runtime: ServicesRuntime | None = getattr(app.state, "services_runtime", None)
        try:
            if root is not None and runtime is None:
                fixed = await root.start(kernels)
            elif root is None and settings.prespawn_count:
                for _ in range(settings.prespawn_count):
                    await kernels.start()
            root_service = await runtime.start(kernels, root) if runtime is not None else None
            if runtime is not None:
                gateway.service_notebooks = runtime.serving_notebooks
            if root is not None:
                serve_root(app, gateway, _active(root_service, fixed))
            await kernels.fill_warm_pool()
            gateway.culler.start()
            gateway.phase = Phase.READY
            log.info("fastkg ready")
            yield
        finally:
            gateway.phase = Phase.STOPPING
            await gateway.culler.stop()
            log.info("shutting down %d kernels", len(kernels))
            await shut_down(list(plugins))
            if runtime is not None:
                await runtime.close()
            if fixed is not None:
                await fixed.pool.close()
            await kernels.close()

    return lifespan


def root_notebook(
    settings: Settings, seed_notebook: SeedNotebook | None, plugins: Sequence[PluginPersonality]
) -> RootNotebook | None:
    """KG's notebook-http notebook (KG_SEED_URI), as the service served at the gateway's root."""
    if seed_notebook is None or seed_notebook.parsed is None:
        return None
    builder = root_app_builder(settings.max_request_body)
    return RootNotebook.configure(settings, seed_notebook.notebook, builder, seed_filter(list(plugins)))


def _active(service: Service | None, fixed: Deployment | None) -> Callable[[], Deployment | None]:
    if service is not None:
        return lambda: service.active  # reloads and rollbacks change it
    return lambda: fixed


def serve_root(app: FastAPI, gateway: GatewayState, active: Callable[[], Deployment | None]) -> None:
    """The gateway's notebook slot serves the root notebook's active version; the gateway state (readiness,
    metrics, the admin page) reads the same version."""
    slot: NotebookSlot = app.state.notebook_slot
    slot.host(active)
    gateway.root_notebook = lambda: version.notebook if (version := active()) is not None else None
    app.state.notebook = gateway.notebook  # the version of the startup (gateway.notebook follows reloads)


class StartupErrorMiddleware:
    """Report a failed startup in one line instead of a traceback (uvicorn logs the failure message)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_clean(message: Message) -> None:
            if message["type"] == "lifespan.startup.failed":
                exc = sys.exception()
                if isinstance(exc, (GatewayError, ConfigurationError, NotebookError)):
                    message = {**message, "message": f"fastkg could not start: {exc}"}
            await send(message)

        await self.app(scope, receive, send_clean)

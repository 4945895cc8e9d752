"""Startup and shutdown: build the kernel service and notebook APIs, prespawn, and always reap kernels."""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager, NoSuchKernel

from app.asgi import ASGIApp, Message, Receive, Scope, Send
from app.config import CellParser, Personality, Settings
from app.errors import ConfigurationError, GatewayError
from app.kernels.seed import Seed
from app.kernels.service import KernelPolicy, KernelService
from app.kernels.sessions import SessionStore
from app.notebook_api.loader import LoadedNotebook, load_notebook
from app.notebook_api.parsers import NotebookError, ParsedNotebook
from app.notebook_api.service import NotebookOptions, NotebookService, parse_notebook
from app.routers.notebook import mount_notebook_api

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
    )


@dataclass(frozen=True)
class SeedNotebook:
    """The KG_SEED_URI notebook, its kernelspec, and (for notebook-http) its endpoints."""

    notebook: LoadedNotebook
    kernel_name: str
    parsed: ParsedNotebook | None

    @property
    def seed(self) -> Seed:
        sources = self.parsed.startup_sources if self.parsed else self.notebook.code_sources()
        return Seed(self.kernel_name, tuple(sources))


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
        specs.get_kernel_spec(kernel_name)
    except (NoSuchKernel, ValueError, OSError):
        raise ConfigurationError(
            f"the notebook needs kernelspec {kernel_name!r}, which is not installed"
        ) from None
    return SeedNotebook(notebook, kernel_name, parsed)


async def check_configuration(settings: Settings, specs: KernelSpecManager) -> None:
    """Raise ConfigurationError for settings the gateway cannot start with."""
    await load_seed_notebook(settings, specs)


def build_lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        specs = KernelSpecManager()
        seed_notebook = await load_seed_notebook(settings, specs)
        kernels = KernelService(kernel_policy(settings), specs, seed_notebook.seed if seed_notebook else None)
        app.state.kernels = kernels
        app.state.sessions = SessionStore(kernels)
        notebook: NotebookService | None = None
        try:
            if seed_notebook is not None and seed_notebook.parsed is not None:
                notebook = await NotebookService.start(
                    seed_notebook.notebook,
                    seed_notebook.parsed,
                    kernels,
                    NotebookOptions.from_settings(settings),
                )
                app.state.notebook = notebook
                mount_notebook_api(app, notebook, settings.base_url)
            elif settings.prespawn_count:
                for _ in range(settings.prespawn_count):
                    await kernels.start()
            await kernels.fill_warm_pool()
            log.info("fastkg ready")
            yield
        finally:
            log.info("shutting down %d kernels", len(kernels))
            if notebook is not None:
                await notebook.close()
            await kernels.close()

    return lifespan


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

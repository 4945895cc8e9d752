"""Startup and shutdown: build the kernel service (and notebook APIs), prespawn, and always reap kernels."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from jupyter_client.kernelspec import NATIVE_KERNEL_NAME, KernelSpecManager

from app.config import Settings
from app.errors import ConfigurationError
from app.kernels.seed import Seed
from app.kernels.service import KernelPolicy, KernelService
from app.kernels.sessions import SessionStore

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
        warm_pool=settings.warm_pool,
    )


async def load_seed(settings: Settings, specs: KernelSpecManager) -> Seed | None:
    """The seed notebook's code cells (less endpoint cells when notebook-http is on); checked loudly."""
    if not settings.seed_uri:
        return None
    from app.notebook_api.loader import load_notebook
    from app.notebook_api.parsers import NotebookError

    try:
        notebook = await load_notebook(settings.seed_uri)
    except NotebookError as exc:
        raise ConfigurationError(str(exc)) from None
    kernel_name = notebook.kernel_name or settings.default_kernel_name or NATIVE_KERNEL_NAME
    try:
        specs.get_kernel_spec(kernel_name)
    except Exception:
        raise ConfigurationError(
            f"the seed notebook needs kernelspec {kernel_name!r}, which is not installed"
        ) from None
    sources = [cell.source for cell in notebook.notebook.cells if cell.cell_type == "code"]
    return Seed(kernel_name, tuple(sources))


async def check_configuration(settings: Settings, specs: KernelSpecManager) -> None:
    """Raise ConfigurationError for settings the gateway cannot start with."""
    await load_seed(settings, specs)


def build_lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        specs = KernelSpecManager()
        seed = await load_seed(settings, specs)
        kernels = KernelService(kernel_policy(settings), specs, seed)
        app.state.kernels = kernels
        app.state.sessions = SessionStore(kernels)
        try:
            if settings.prespawn_count:
                for _ in range(settings.prespawn_count):
                    await kernels.start()
            await kernels.fill_warm_pool()
            log.info("fastkg ready")
            yield
        finally:
            log.info("shutting down %d kernels", len(kernels))
            await kernels.close()

    return lifespan

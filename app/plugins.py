"""Plug-in personalities (KG_API): third-party APIs served next to, or instead of, the built-in ones.

Kernel Gateway imports the module KG_API names and calls its `create_personality(parent=app)`; the
returned object builds tornado handlers, filters seed cells and is told to shut down. fastkg keeps that
shape with typed parts: a plug-in is found by entry-point name (group `fastkg.personalities`) or imported
by dotted module name; its `create_personality(gateway)` receives a `GatewayServices` and returns an
object with `create_router() -> APIRouter`, and optionally `should_seed_cell(code) -> bool` and
`shutdown()` (plain or async). Routes are added once, at create_app time, under KG_BASE_URL.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from types import ModuleType
from typing import Protocol, runtime_checkable

from fastapi import APIRouter
from jupyter_client.kernelspec import KernelSpecManager

from app.config import Settings
from app.errors import ConfigurationError
from app.kernels.service import KernelService

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "fastkg.personalities"
SHUTDOWN_HOOK_SECONDS = 10.0


@dataclass
class GatewayServices:
    """The gateway's services as a plug-in sees them. Kernels and kernelspecs exist once the gateway has
    started (the lifespan attaches them); read them in route handlers, not in create_personality."""

    settings: Settings
    _kernels: KernelService | None = field(default=None, repr=False)

    @property
    def kernels(self) -> KernelService:
        """Start, list, restart, shut down kernels; `kernel.executor.execute(code, timeout)` runs code."""
        if self._kernels is None:
            raise RuntimeError("the gateway has not started yet")
        return self._kernels

    @property
    def kernelspecs(self) -> KernelSpecManager:
        return self.kernels.specs

    def attach(self, kernels: KernelService | None) -> None:
        self._kernels = kernels


@runtime_checkable
class PluginPersonality(Protocol):
    """What `create_personality(gateway)` returns; `should_seed_cell` and `shutdown` are optional."""

    def create_router(self) -> APIRouter: ...


PersonalityFactory = Callable[[GatewayServices], PluginPersonality]


def _factory_of(name: str, loaded: object) -> PersonalityFactory:
    factory = getattr(loaded, "create_personality", None) if isinstance(loaded, ModuleType) else loaded
    if not callable(factory):
        raise ConfigurationError(f"API plug-in {name!r} (KG_API) has no create_personality function")
    return factory  # type: ignore[no-any-return]


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(exc.name + ".")):
            return None  # no such module (rather than a module that fails to import its own dependency)
        raise ConfigurationError(f"API plug-in {name!r} (KG_API) could not be imported: {exc}") from None
    except Exception as exc:
        raise ConfigurationError(f"API plug-in {name!r} (KG_API) could not be imported: {exc!r}") from None


def find_personality(name: str) -> PersonalityFactory:
    """An installed plug-in by entry-point name, else a module by dotted name; ConfigurationError if none."""
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        try:
            loaded = entry_point.load()
        except Exception as exc:
            raise ConfigurationError(f"API plug-in {name!r} (KG_API) could not be loaded: {exc!r}") from None
        return _factory_of(name, loaded)
    module = _import(name) if name.isidentifier() or all(p.isidentifier() for p in name.split(".")) else None
    if module is None:
        raise ConfigurationError(
            f"unknown API {name!r} (KG_API): not jupyter-websocket or notebook-http, not an installed plug-in"
            f" (entry point group {ENTRY_POINT_GROUP}), and no importable module of that name"
        )
    return _factory_of(name, module)


def find_personalities(settings: Settings) -> list[PersonalityFactory]:
    return [find_personality(name) for name in settings.plugin_apis]


def create_personalities(settings: Settings, gateway: GatewayServices) -> list[PluginPersonality]:
    personalities = []
    for name, factory in zip(settings.plugin_apis, find_personalities(settings), strict=True):
        try:
            personality = factory(gateway)
        except Exception as exc:
            raise ConfigurationError(f"API plug-in {name!r} (KG_API) failed to initialise: {exc!r}") from None
        if not isinstance(personality, PluginPersonality):
            raise ConfigurationError(f"API plug-in {name!r} (KG_API) returned no create_router()")
        personalities.append(personality)
    return personalities


def seed_filter(personalities: list[PluginPersonality]) -> Callable[[str], bool]:
    """A cell is seeded when every plug-in that has an opinion (should_seed_cell) agrees, as in KG."""
    filters: list[Callable[[str], bool]] = [
        p.should_seed_cell  # type: ignore[attr-defined]
        for p in personalities
        if callable(getattr(p, "should_seed_cell", None))
    ]
    return lambda code: all(bool(accept(code)) for accept in filters)


async def shut_down(personalities: list[PluginPersonality]) -> None:
    """Call every plug-in's shutdown hook; one that fails is logged and does not stop the others."""
    for personality in personalities:
        hook = getattr(personality, "shutdown", None)
        if not callable(hook):
            continue
        try:
            async with asyncio.timeout(SHUTDOWN_HOOK_SECONDS):
                result = hook()
                if inspect.isawaitable(result):
                    await result
        except Exception:
            log.exception("the shutdown hook of plug-in %s failed", type(personality).__name__)

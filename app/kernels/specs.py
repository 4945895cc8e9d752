"""Kernelspecs as the API shows them, and safe access to their resource files (read off the event loop)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

from app.errors import BadRequest, KernelSpecNotFound, NotFound

RESOURCE_NAMES = ("logo-32x32.png", "logo-64x64.png", "logo-svg.svg", "kernel.js", "kernel.css")


@dataclass(frozen=True)
class SpecInfo:
    name: str
    spec: dict[str, Any]
    resources: dict[str, str]  # resource key -> file name


def _resources(resource_dir: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for file_name in RESOURCE_NAMES:
        if os.path.isfile(os.path.join(resource_dir, file_name)):
            found[file_name.rsplit(".", 1)[0]] = file_name
    return found


def _read_all(manager: KernelSpecManager) -> dict[str, SpecInfo]:
    specs: dict[str, SpecInfo] = {}
    for name, entry in manager.get_all_specs().items():
        specs[name] = SpecInfo(name, entry["spec"], _resources(entry["resource_dir"]))
    return specs


async def all_specs(manager: KernelSpecManager) -> dict[str, SpecInfo]:
    return await asyncio.to_thread(_read_all, manager)


async def one_spec(manager: KernelSpecManager, name: str) -> SpecInfo:
    specs = await all_specs(manager)
    if name not in specs:
        raise KernelSpecNotFound(name)
    return specs[name]


def _resolve_resource(manager: KernelSpecManager, name: str, relative: str) -> Path:
    if "\x00" in relative or "\x00" in name:
        raise BadRequest("Invalid path")
    try:
        base = Path(manager.get_kernel_spec(name).resource_dir).resolve()
    except (NoSuchKernel, ValueError, OSError):
        raise KernelSpecNotFound(name) from None
    target = (base / relative).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise NotFound(f"No such resource: {relative}")
    return target


async def resource_path(manager: KernelSpecManager, name: str, relative: str) -> Path:
    return await asyncio.to_thread(_resolve_resource, manager, name, relative)

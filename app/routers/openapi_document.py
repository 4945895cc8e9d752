"""The gateway's OpenAPI document, built in one place: its own routes, the root notebook's endpoints
(listed first, as they are matched first), every serving service's endpoints with one tag per service,
and the 400 `{reason, message}` the gateway answers for bad input. Regenerated whenever the notebook or
the set of services (or a service's version) changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.routing import BaseRoute

from app.http.error_responses import document_bad_requests
from app.routers.notebook_slot import NotebookSlot
from app.services.registry import ServiceRegistry


def documented_routes(app: FastAPI) -> list[BaseRoute]:
    """The app's routes with a notebook's endpoints first (they live in the notebook slot)."""
    slot: NotebookSlot | None = getattr(app.state, "notebook_slot", None)
    return [*(slot.documented_routes if slot else []), *app.routes]


def gateway_openapi(app: FastAPI, registry: ServiceRegistry | None = None) -> Callable[[], dict[str, Any]]:
    """An `app.openapi` replacement; cached until the notebook or the services change."""
    cache: dict[tuple[int, int], dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        slot: NotebookSlot | None = getattr(app.state, "notebook_slot", None)
        key = (registry.generation if registry else 0, id(slot.router) if slot else 0)
        if key in cache:
            return cache[key]
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=documented_routes(app),
            tags=app.openapi_tags,
        )
        if registry is not None:
            _add_services(document, registry)
        document = document_bad_requests(document)
        cache.clear()
        cache[key] = document
        return document

    return openapi


def _add_services(document: dict[str, Any], registry: ServiceRegistry) -> None:
    tags: list[dict[str, Any]] = list(document.get("tags", []))
    paths: dict[str, Any] = document.setdefault("paths", {})
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    for service in registry.all():
        active = service.active
        if active is None:
            continue
        if registry.root_of(service) is not None:  # its routes are the notebook slot's, documented first
            tags.append(
                {
                    "name": active.notebook.name,
                    "description": f"Notebook service {service.name} at the root: KG_SEED_URI's notebook "
                    f"(version {active.version.id})",
                }
            )
            continue
        part = active.app.openapi()
        for path, operations in part.get("paths", {}).items():
            paths.setdefault(path, operations)
        for name, schema in part.get("components", {}).get("schemas", {}).items():
            schemas.setdefault(name, schema)
        tags.append(
            {
                "name": service.name,
                "description": f"Notebook service at {active.prefix} (version {active.version.id}); "
                f"its own document: {active.prefix}/openapi.json",
            }
        )
    if tags:
        document["tags"] = tags

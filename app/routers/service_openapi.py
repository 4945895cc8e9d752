"""The gateway's combined OpenAPI document: its own routes plus every serving service's endpoints, one
tag per service, regenerated whenever the set of services (or a service's version) changes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.services.registry import ServiceRegistry


def combined_openapi(app: FastAPI, registry: ServiceRegistry) -> Callable[[], dict[str, Any]]:
    cache: dict[int, dict[str, Any]] = {}

    def openapi() -> dict[str, Any]:
        generation = registry.generation
        if generation in cache:
            return cache[generation]
        document = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            routes=app.routes,
            tags=app.openapi_tags,
        )
        tags: list[dict[str, Any]] = list(document.get("tags", []))
        paths: dict[str, Any] = document.setdefault("paths", {})
        schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
        for service in registry.all():
            active = service.active
            if active is None:
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
        cache.clear()
        cache[generation] = document
        return document

    return openapi

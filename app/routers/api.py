"""API root: version, and Kernel Gateway's swagger paths served from the generated OpenAPI document."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter, Request, Response

from app import __version__
from app.routers.tags import Tag
from app.schemas import VersionModel

router = APIRouter(tags=[Tag.API])


@router.get("/api", operation_id="get_api_version")
async def get_api_version() -> VersionModel:
    """Gateway version."""
    return VersionModel(version=__version__)


def _document(request: Request) -> dict[str, Any]:
    document: dict[str, Any] = request.app.openapi()
    return document


@router.get("/api/swagger.json", operation_id="get_swagger_json")
async def get_swagger_json(request: Request) -> Response:
    """The OpenAPI document of this gateway (KG's path)."""
    return Response(json.dumps(_document(request)), media_type="application/json")


@router.get("/api/swagger.yaml", operation_id="get_swagger_yaml")
async def get_swagger_yaml(request: Request) -> Response:
    """The OpenAPI document of this gateway as YAML (KG's path)."""
    return Response(yaml.safe_dump(_document(request), sort_keys=False), media_type="application/x-yaml")

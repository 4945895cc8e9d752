"""API root: version, and Kernel Gateway's Swagger 2.0 document of the kernel API at KG's paths."""

from __future__ import annotations

import json
from typing import Any

import yaml
from fastapi import APIRouter, Request, Response

from app import __version__
from app.deps import SettingsDep
from app.routers.tags import Tag
from app.schemas import VersionModel
from app.swagger2 import kernel_api_document

router = APIRouter(tags=[Tag.API])


class YamlResponse(Response):
    media_type = "text/x-yaml"


@router.get("/api", operation_id="get_api_version")
async def get_api_version() -> VersionModel:
    """Gateway version."""
    return VersionModel(version=__version__)


def _document(request: Request, settings: SettingsDep) -> dict[str, Any]:
    return kernel_api_document(request.app.openapi(), base_url=settings.base_url)


def _swagger(media_type: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": "A Swagger 2.0 document",
            "content": {media_type: {"schema": {"type": "object"}}},
        }
    }


@router.get("/api/swagger.json", operation_id="get_swagger_json", responses=_swagger("application/json"))
async def get_swagger_json(request: Request, settings: SettingsDep) -> Response:
    """The kernel API as a Swagger 2.0 document (KG's path); the full OpenAPI 3 document is /openapi.json."""
    return Response(json.dumps(_document(request, settings)), media_type="application/json")


@router.get(
    "/api/swagger.yaml",
    operation_id="get_swagger_yaml",
    response_class=YamlResponse,
    responses=_swagger(YamlResponse.media_type),
)
async def get_swagger_yaml(request: Request, settings: SettingsDep) -> YamlResponse:
    """The kernel API's Swagger 2.0 document as YAML (KG's path and content type)."""
    return YamlResponse(yaml.safe_dump(_document(request, settings), sort_keys=False))

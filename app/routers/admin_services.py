"""The admin page's way to the notebook services REST API: `/admin/api/services...` forwards to
`/api/services...` with the gateway's own token, so the admin cookie stays confined to `/admin/api/`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
from fastapi import APIRouter, Request, Response

from app.config import Settings
from app.deps import SettingsDep
from app.errors import BadRequest
from app.routers.services import DEPLOY_BODY
from app.schemas import error_responses

# whatever /api/services answers: its services, versions and errors (403: a missing X-CSRF-Token)
FORWARDED: dict[int | str, dict[str, Any]] = {
    200: {"description": "The answer of /api/services", "content": {"application/json": {}}},
    201: {"description": "A service deployed", "content": {"application/json": {}}},
    204: {"description": "A service undeployed"},
    **error_responses(400, 403, 404, 405, 409, 413, 422, 503),
}


def services_router(require_csrf: Callable[[Request], None]) -> APIRouter:
    """`/services` and `/services/{rest}` for every method the services API serves; calls other than
    GET pass `require_csrf` first."""

    async def forward(rest: str, request: Request, settings: Settings) -> Response:
        if ".." in rest.split("/"):  # never a way out of /api/services with the gateway's token
            raise BadRequest("Bad service path")
        if request.method != "GET":
            require_csrf(request)
        headers = {"Authorization": f"token {settings.token}"} if settings.token else {}
        if content_type := request.headers.get("content-type"):
            headers["Content-Type"] = content_type
        transport = httpx.ASGITransport(app=request.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://fastkg.internal") as client:
            answer = await client.request(
                request.method,
                f"{settings.base_url}/api/services{quote(rest)}",  # `rest` arrives percent-decoded
                params=str(request.query_params),
                content=await request.body(),
                headers=headers,
            )
        media = answer.headers.get("content-type", "application/json")
        return Response(answer.content, status_code=answer.status_code, media_type=media)

    async def services(request: Request, settings: SettingsDep) -> Response:
        """`/api/services` reached with the admin cookie: what it answers (404 when the gateway serves
        no services)."""
        return await forward("", request, settings)

    async def service_path(rest: str, request: Request, settings: SettingsDep) -> Response:
        """`/api/services/{rest}` reached with the admin cookie: what it answers (a `..` segment in
        `rest` is a 400)."""
        return await forward(f"/{rest}", request, settings)

    router = APIRouter()
    for path, endpoint, name, methods in (
        ("/services", services, "services", ("GET", "POST")),  # the methods /api/services serves
        ("/services/{rest:path}", service_path, "service_path", ("GET", "POST", "PUT", "DELETE")),
    ):
        for method in methods:
            deploys = endpoint is services and method == "POST"
            router.add_api_route(
                path,
                endpoint,
                methods=[method],
                operation_id=f"admin_{method.lower()}_{name}",
                response_class=Response,
                responses=FORWARDED,
                openapi_extra={"requestBody": DEPLOY_BODY} if deploys else None,
            )
    return router

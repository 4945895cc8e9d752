"""The HTTP edge of a notebook API: one FastAPI route per endpoint (documented in OpenAPI), KG's
`/_api/spec/swagger.json` and `/_api/source`, and `/public/` static files."""

from __future__ import annotations

import inspect
import re
from typing import Annotated, Any
from urllib.parse import unquote

from fastapi import FastAPI, Path, Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match
from starlette.types import Scope

from app.errors import BadRequest
from app.notebook_api.parsers import VERBS, Endpoint
from app.notebook_api.request import RequestBodyError, build_request
from app.notebook_api.service import NotebookService

BODY_VERBS = {"POST", "PUT", "PATCH", "DELETE"}
REQUEST_BODY = {
    "required": False,
    "content": {
        "application/json": {"schema": {}},
        "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
        "multipart/form-data": {"schema": {"type": "object"}},
        "text/plain": {"schema": {"type": "string"}},
    },
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    "200": {"description": "The cell's output", "content": {"text/plain": {"schema": {"type": "string"}}}},
    "500": {"description": "The cell raised an error"},
    "504": {"description": "The cell did not finish in time"},
}


class NotebookRoute(APIRoute):
    """Matches the still percent-encoded path, as Tornado (KG) does, then decodes parameter values:
    `/items/a%2Fb` is `/items/:id` with id `a/b`, not a two-segment path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw_path = scope.get("raw_path")
        if scope["type"] != "http" or not isinstance(raw_path, bytes) or scope.get("root_path"):
            return super().matches(scope)
        match, child_scope = super().matches({**scope, "path": raw_path.decode("latin-1")})
        if match is not Match.NONE:
            params = child_scope.get("path_params", {})
            child_scope["path_params"] = {k: unquote(v, errors="replace") for k, v in params.items()}
        return match, child_scope


def _safe_names(endpoint: Endpoint) -> tuple[str, dict[str, str]]:
    """A Starlette path template; parameters that are not identifiers get stand-in names."""
    names: dict[str, str] = {}
    template = endpoint.path
    for index, name in enumerate(endpoint.param_names):
        safe = name if name.isidentifier() else f"param{index}"
        names[safe] = name
        template = template.replace(f":{name}", f"{{{safe}}}", 1)
    return template, names


def _operation_id(service: NotebookService, endpoint: Endpoint) -> str:
    slug = re.sub(r"[^0-9A-Za-z]+", "_", endpoint.path).strip("_") or "root"
    return endpoint.operation_id or f"{service.name}_{endpoint.verb.lower()}_{slug}"


def _route_function(service: NotebookService, endpoint: Endpoint, names: dict[str, str]) -> Any:
    async def run_cell(request: Request, **_: str) -> Response:
        params = {names.get(k, k): str(v) for k, v in request.path_params.items()}
        try:
            payload = build_request(
                path_params=params,
                query=request.query_params.multi_items(),
                headers=[(k, v) for k, v in request.headers.items() if k != "authorization"],
                body=await request.body(),
                content_type=request.headers.get("content-type"),
            )
        except RequestBodyError as exc:
            raise BadRequest(str(exc)) from None
        result = await service.call(endpoint, payload, request.headers.get("accept", ""))
        return Response(result.body, status_code=result.status, headers=result.headers)

    parameters = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    parameters += [
        inspect.Parameter(
            safe, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[str, Path(description=name)]
        )
        for safe, name in names.items()
    ]
    run_cell.__signature__ = inspect.Signature(parameters, return_annotation=Response)  # type: ignore[attr-defined]
    return run_cell


def _method_not_allowed(allowed: list[str]) -> Any:
    async def method_not_allowed() -> Response:
        raise StarletteHTTPException(405, headers={"Allow": ", ".join(allowed)})

    return method_not_allowed


def mount_notebook_api(app: FastAPI, service: NotebookService, base_url: str) -> None:
    """Add the notebook's routes (KG's order: fixed paths before parameterised ones).

    As in KG (one Tornado handler per path), the first path that matches a request owns it: each
    path's verbs are followed by a hidden route answering 405 for its other verbs, so a later
    parameterised path (`/items/:id`) never serves a verb that a fixed path (`/items/new`) lacks.
    """

    # KG registers the notebook download and the static files before the endpoints, the spec after them.
    async def get_notebook_source() -> Response:
        return Response(service.notebook.raw, media_type="application/json")

    if service.options.allow_download:
        app.add_api_route(
            f"{base_url}/_api/source", get_notebook_source, methods=["GET"], tags=[service.name]
        )
    if service.options.static_path:
        app.mount(f"{base_url}/public", StaticFiles(directory=service.options.static_path), name="public")
    endpoints = service.endpoints
    for index, endpoint in enumerate(endpoints):
        template, names = _safe_names(endpoint)
        app.router.add_api_route(
            f"{base_url}{template}",
            _route_function(service, endpoint, names),
            route_class_override=NotebookRoute,
            methods=[endpoint.verb],
            tags=[service.name],
            operation_id=_operation_id(service, endpoint),
            summary=endpoint.summary or f"{endpoint.verb} {endpoint.path}",
            description=endpoint.description
            or f"Runs the notebook cell annotated `{endpoint.verb} {endpoint.path}`.",
            response_class=Response,
            responses=RESPONSES,
            openapi_extra={"requestBody": REQUEST_BODY} if endpoint.verb in BODY_VERBS else None,
        )
        last_of_path = index + 1 == len(endpoints) or endpoints[index + 1].path != endpoint.path
        served = service.parsed.paths[endpoint.path]
        others = [verb for verb in (*VERBS, "HEAD") if verb not in served]
        if last_of_path and others:
            app.router.add_api_route(
                f"{base_url}{template}",
                _method_not_allowed(served),
                route_class_override=NotebookRoute,
                methods=others,
                include_in_schema=False,
            )

    async def get_swagger_spec() -> JSONResponse:
        return JSONResponse(service.swagger(base_url))

    app.add_api_route(
        f"{base_url}/_api/spec/swagger.json", get_swagger_spec, methods=["GET"], tags=[service.name]
    )
    app.openapi_schema = None

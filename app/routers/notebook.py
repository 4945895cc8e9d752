"""The HTTP edge of a notebook API, as one router: KG's `/_api/source` and `/public/` files, one FastAPI
route per endpoint (documented in OpenAPI), and KG's `/_api/spec/swagger.json`, in KG's order.

A NotebookRouter is served by an app's notebook slot (notebook_slot.py), its first route.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path as FilePath
from typing import Annotated, Any
from urllib.parse import unquote_to_bytes

from fastapi import Path, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Receive, Scope, Send

from app.errors import BadRequest, MethodNotAllowed
from app.http.etag import with_etag
from app.notebook_api.parsers import Endpoint
from app.notebook_api.request import RequestBodyError, build_request
from app.notebook_api.service import NotebookService
from app.routers.files import FileContent, content_type, file_response, read_public_file

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
_BAD_PARAMETER = "fastkg.bad_path_parameter"
Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class NotebookRoute(APIRoute):
    """Matches the still percent-encoded path, as Tornado (KG) does, then decodes parameter values:
    `/items/a%2Fb` is `/items/:id` with id `a/b`, not a two-segment path. A value that is not UTF-8
    is KG's 400 `Invalid unicode in <name>: <bytes>` (raised by the endpoint, not the matcher)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        raw_path = scope.get("raw_path")
        if scope["type"] != "http" or not isinstance(raw_path, bytes) or scope.get("root_path"):
            return super().matches(scope)
        match, child_scope = super().matches({**scope, "path": raw_path.decode("latin-1")})
        if match is not Match.NONE:
            decoded: dict[str, str] = {}
            for name, value in child_scope.get("path_params", {}).items():
                raw = unquote_to_bytes(value)
                try:
                    decoded[name] = raw.decode("utf-8")
                except UnicodeDecodeError:
                    decoded[name] = ""
                    child_scope.setdefault(_BAD_PARAMETER, (name, raw))
            child_scope["path_params"] = decoded
        return match, child_scope


@dataclass(frozen=True)
class PathGroup:
    """The routes of one path: the first group whose path matches a request owns it (KG's handlers)."""

    routes: Sequence[BaseRoute]
    methods: Sequence[str]


class NotebookRouter:
    """A notebook's routes in KG's order; a known path with another method is a JSON 405."""

    def __init__(self, groups: Sequence[PathGroup]) -> None:
        self.groups = groups

    @property
    def documented_routes(self) -> list[APIRoute]:
        routes = (route for group in self.groups for route in group.routes)
        return [route for route in routes if isinstance(route, APIRoute) and route.include_in_schema]

    def match(self, scope: Scope) -> tuple[Handler, Scope] | None:
        for group in self.groups:
            partial = False
            for route in group.routes:
                found, child_scope = route.matches(scope)
                if found is Match.FULL:
                    return route.handle, child_scope
                partial = partial or found is Match.PARTIAL
            if partial:
                return _method_not_allowed(group.methods), {}
        return None


def _method_not_allowed(allowed: Sequence[str]) -> Handler:
    async def method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
        raise MethodNotAllowed(allowed=allowed)

    return method_not_allowed


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
        bad = request.scope.get(_BAD_PARAMETER)
        if bad is not None:
            name, raw = bad
            raise BadRequest(f"Invalid unicode in {names.get(name, name)}: {raw[:40]!r}")
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
        response = Response(result.body, status_code=result.status, headers=result.headers)
        return with_etag(response, request.method, request.headers)

    parameters = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Request)]
    parameters += [
        inspect.Parameter(
            safe, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[str, Path(description=name)]
        )
        for safe, name in names.items()
    ]
    run_cell.__signature__ = inspect.Signature(parameters, return_annotation=Response)  # type: ignore[attr-defined]
    return run_cell


def _endpoint_route(service: NotebookService, endpoint: Endpoint, base_url: str) -> APIRoute:
    template, names = _safe_names(endpoint)
    return NotebookRoute(
        f"{base_url}{template}",
        _route_function(service, endpoint, names),
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


def _file_group(path: str, endpoint: Callable[[Request], Awaitable[Response]], tag: str) -> PathGroup:
    """GET (documented) and HEAD of a file, as Tornado's StaticFileHandler serves it."""
    get = APIRoute(path, endpoint, methods=["GET"], tags=[tag], response_class=Response)
    head = Route(path, endpoint, methods=["HEAD"], include_in_schema=False)
    return PathGroup([get, head], ["GET", "HEAD"])


def notebook_router(service: NotebookService, base_url: str) -> NotebookRouter:
    """KG's order: the notebook download and the static files, the endpoints (fixed paths before
    parameterised ones), then the spec; a `# GET /:a/:b/:c` cell therefore hides the spec, as in KG."""
    groups: list[PathGroup] = []
    if service.options.allow_download:
        source = FileContent(
            service.notebook.raw, int(service.loaded_at), content_type(f"{service.name}.ipynb")
        )

        async def get_notebook_source(request: Request) -> Response:
            """The notebook behind this API (KG_ALLOW_NOTEBOOK_DOWNLOAD)."""
            return file_response(source, request.headers, request.method)

        groups.append(_file_group(f"{base_url}/_api/source", get_notebook_source, service.name))
    if service.options.static_path:
        root = FilePath(service.options.static_path)

        async def get_public_file(request: Request) -> Response:
            content = await read_public_file(root, request.path_params["path"])
            return file_response(content, request.headers, request.method)

        public = Route(f"{base_url}/public/{{path:path}}", get_public_file, methods=["GET"])
        groups.append(PathGroup([public], ["GET", "HEAD"]))
    for path, verbs in service.parsed.paths.items():
        endpoints = [e for e in service.endpoints if e.path == path]
        groups.append(PathGroup([_endpoint_route(service, e, base_url) for e in endpoints], verbs))

    async def get_swagger_spec(request: Request) -> Response:
        """KG's Swagger 2.0 document of this notebook's API."""
        response = Response(service.swagger_json(base_url), media_type="application/json")
        return with_etag(response, request.method, request.headers)

    spec = APIRoute(
        f"{base_url}/_api/spec/swagger.json",
        get_swagger_spec,
        methods=["GET"],
        tags=[service.name],
        response_class=Response,
    )
    groups.append(PathGroup([spec], ["GET"]))
    return NotebookRouter(groups)

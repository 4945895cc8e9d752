"""The one table that maps every failure to a JSON `{reason, message}` response (never a traceback)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from app.errors import GatewayError, error_body
from app.schemas import ErrorModel

log = logging.getLogger(__name__)


def _json(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status, headers=headers)


async def _gateway_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, GatewayError)
    return _json(exc.status, exc.message, exc.headers)


_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _allowed_methods(request: Request) -> str:
    """Every method some route of this path answers, found by asking the routes (Starlette's 405 names
    only the first partly matching route's methods, and FastAPI makes one route per method)."""
    allowed = []
    for method in _METHODS:
        probe = {key: request.scope.get(key) for key in ("type", "path", "root_path", "headers")}
        probe.update(method=method, root_path=probe["root_path"] or "")
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            allowed.append(method)
    # the CORS layer answers a preflight on every path
    return ", ".join([*allowed, "OPTIONS"]) if allowed else ""


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    headers = dict(getattr(exc, "headers", None) or {})
    if exc.status_code == 405 and "Allow" in headers:
        headers["Allow"] = _allowed_methods(request) or headers["Allow"]
    return _json(exc.status_code, str(exc.detail), headers or None)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(error.get("type") == "json_invalid" for error in errors):
        return _json(400, "Malformed JSON body")
    details = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}"
        for error in errors[:5]
    )
    # Jupyter Server and KG answer 400 for a body they cannot use; they never answer 422
    return _json(400, f"Invalid request: {details}")


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return _json(500, "Internal server error")


def document_bad_requests(document: dict[str, Any]) -> dict[str, Any]:
    """FastAPI documents a 422 validation error on every operation with inputs; the gateway answers those
    with a 400 `{reason, message}`, so the document says that instead."""
    bad_request = {
        "description": "Bad Request",
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorModel"}}},
    }
    replaced = False
    for item in document.get("paths", {}).values():
        for operation in item.values():
            responses = operation.get("responses", {}) if isinstance(operation, dict) else {}
            # only FastAPI's own: a route may document a 422 it answers (the services API does)
            if "HTTPValidationError" in str(responses.get("422", "")):
                del responses["422"]
                responses.setdefault("400", bad_request)
                replaced = True
    if replaced:
        schemas = document.setdefault("components", {}).setdefault("schemas", {})
        schemas.setdefault("ErrorModel", ErrorModel.model_json_schema())
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
    return document


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)

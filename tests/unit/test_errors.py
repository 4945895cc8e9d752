"""The error table: every failure becomes JSON {reason, message}, with the right status, never a traceback."""

from __future__ import annotations

from http import HTTPStatus

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel

from app import errors
from app.errors import error_body
from app.http.error_responses import install_error_handlers


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (400, "Bad Request"),
        (401, "Unauthorized"),
        (403, "Forbidden"),
        (404, "Not Found"),
        (413, "Request Entity Too Large"),
        (422, "Unprocessable Entity"),
        (500, "Internal Server Error"),
        (503, "Service Unavailable"),
    ],
)
def test_error_body(status: int, reason: str) -> None:
    assert error_body(status, "what happened") == {"reason": reason, "message": "what happened"}


def test_error_body_unknown_status() -> None:
    assert error_body(599, "odd") == {"reason": "Error", "message": "odd"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (errors.BadRequest("m"), 400),
        (errors.Unauthorized("m"), 401),
        (errors.Forbidden("m"), 403),
        (errors.NotFound("m"), 404),
        (errors.KernelNotFound("k1"), 404),
        (errors.KernelSpecNotFound("spec"), 404),
        (errors.SessionNotFound("s1"), 404),
        (errors.MethodNotAllowed("m"), 405),
        (errors.Conflict("m"), 409),
        (errors.PayloadTooLarge("m"), 413),
        (errors.TooManyRequests("m", 1), 429),
        (errors.KernelLimitReached("m"), 403),
        (errors.KernelStartFailed("m"), 500),
        (errors.SeedFailed("m"), 500),
        (errors.KernelUnavailable("m"), 503),
        (errors.ExecutionTimeout("m"), 504),
    ],
)
def test_gateway_error_statuses(error: errors.GatewayError, status: int) -> None:
    assert error.status == status
    assert error.reason == HTTPStatus(status).phrase
    assert error.message == str(error)


def test_not_found_messages_name_the_thing() -> None:
    assert "k-123" in errors.KernelNotFound("k-123").message
    assert "myspec" in errors.KernelSpecNotFound("myspec").message
    assert "s-9" in errors.SessionNotFound("s-9").message


class Body(BaseModel):
    name: str


def error_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/gateway")
    async def gateway_error() -> None:
        raise errors.KernelNotFound("abc")

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("/secret/path/file.py line 3 leaked detail")

    @app.post("/typed")
    async def typed(body: Body) -> Body:
        return body

    return app


async def call(method: str, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=error_app(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


async def test_gateway_error_response() -> None:
    response = await call("GET", "/gateway")
    assert response.status_code == 404
    assert response.json() == {"reason": "Not Found", "message": "Kernel does not exist: abc"}


async def test_unexpected_error_is_a_bare_500() -> None:
    response = await call("GET", "/boom")
    assert response.status_code == 500
    assert response.json() == {"reason": "Internal Server Error", "message": "Internal server error"}
    assert "secret" not in response.text
    assert "Traceback" not in response.text


async def test_unknown_route_and_method() -> None:
    missing = await call("GET", "/nope")
    assert missing.status_code == 404
    assert set(missing.json()) == {"reason", "message"}
    wrong_method = await call("DELETE", "/gateway")
    assert wrong_method.status_code == 405
    assert wrong_method.json()["reason"] == "Method Not Allowed"


async def test_malformed_json_is_400() -> None:
    response = await call(
        "POST", "/typed", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json() == {"reason": "Bad Request", "message": "Malformed JSON body"}


async def test_wrongly_typed_body_is_400() -> None:
    """Jupyter Server and KG answer 400 for a body they cannot use; they never answer 422."""
    response = await call("POST", "/typed", json={"name": ["not", "a", "string"]})
    assert response.status_code == 400
    body = response.json()
    assert body["reason"] == "Bad Request"
    assert body["message"] == "Invalid request: body.name: Input should be a valid string"

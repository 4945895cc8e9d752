"""The gateway's OpenAPI document says what the routes answer: the statuses, bodies and media types the
API fuzzer (tests/integration/test_api_fuzz.py) found undocumented or documented wrongly."""

from __future__ import annotations

from typing import Any

import pytest
from openapi_spec_validator import validate

from app.config import Settings
from app.main import create_app

ERROR = {"$ref": "#/components/schemas/ErrorModel"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    settings = Settings(api="jupyter-websocket,services", admin="on", auth_token="t", list_kernels=True)
    openapi: dict[str, Any] = create_app(settings).openapi()
    validate(openapi)
    return openapi


def operation(document: dict[str, Any], method: str, path: str) -> dict[str, Any]:
    found: dict[str, Any] = document["paths"][path][method.lower()]
    return found


@pytest.mark.parametrize(
    ("method", "path", "statuses"),
    [
        ("POST", "/api/kernels", {403, 500, 503}),
        ("POST", "/api/kernels/{kernel_id}/restart", {404, 500}),
        ("POST", "/api/kernels/{kernel_id}/interrupt", {404, 503}),
        ("POST", "/api/sessions", {400, 403, 404}),  # a new session's kernel: KG_MAX_KERNELS
        ("POST", "/admin/api/kernels/{kernel_id}/interrupt", {403, 404}),
        ("DELETE", "/admin/api/kernels/{kernel_id}", {403, 404}),
        ("POST", "/api/services", {400, 409, 413, 422, 503}),
        ("PUT", "/api/services/{name}", {400, 404, 409, 413, 422}),
        ("GET", "/api/services/{name}/versions", {404}),
        ("POST", "/api/services/{name}/rollback", {404, 409, 422}),
        ("DELETE", "/api/services/{name}", {404, 409}),
        ("GET", "/api/jobs/{job_id}", {404, 500}),
        ("GET", "/admin/api/services/{rest}", {400, 404}),  # forwarded: whatever /api/services answers
        ("POST", "/admin/api/services", {403, 409, 422}),
    ],
)
def test_errors_answered_are_documented(
    document: dict[str, Any], method: str, path: str, statuses: set[int]
) -> None:
    responses = operation(document, method, path)["responses"]
    for status in statuses:
        assert responses[str(status)]["content"]["application/json"]["schema"] == ERROR, status


def test_only_fastapis_422_becomes_a_400(document: dict[str, Any]) -> None:
    # the services API answers 422 for a body it cannot deploy; the validator's 422 is never sent
    assert "HTTPValidationError" not in str(document)
    assert "422" in operation(document, "POST", "/api/services")["responses"]
    assert "422" not in operation(document, "POST", "/api/kernels")["responses"]


def test_media_types(document: dict[str, Any]) -> None:
    yaml = operation(document, "GET", "/api/swagger.yaml")["responses"]["200"]["content"]
    assert yaml == {"text/x-yaml": {"schema": {"type": "object"}}}  # a document, sent as KG sends it
    resource = operation(document, "GET", "/kernelspecs/{name}/{path}")["responses"]["200"]["content"]
    assert list(resource) == ["*/*"]  # logos and any other file of the kernelspec


def test_request_bodies(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    # KG answers 400 for an `env` that is null: only an object is offered
    assert schemas["StartKernelRequest"]["properties"]["env"]["type"] == "object"
    # Jupyter Server answers 400 for a session body that is missing, null or lacks path or type
    for method, path in (("POST", "/api/sessions"), ("PATCH", "/api/sessions/{session_id}")):
        body = operation(document, method, path)["requestBody"]
        assert body["required"] is True
        assert "anyOf" not in body["content"]["application/json"]["schema"]
    assert schemas["CreateSessionRequest"]["required"] == ["path", "type"]
    assert schemas["CreateSessionRequest"]["properties"]["path"] == {"type": "string", "title": "Path"}
    deploy = operation(document, "POST", "/api/services")["requestBody"]["content"]["application/json"]
    assert deploy["schema"]["properties"]["name"]["pattern"] == "^[a-z0-9][a-z0-9-]*$"
    assert deploy["schema"]["properties"]["pool_min"] == {"type": "integer", "minimum": 1}
    assert deploy["schema"]["additionalProperties"] is False  # an unknown setting is a 422
    update = operation(document, "PUT", "/api/services/{name}")["requestBody"]["content"]
    assert update["application/json"]["schema"]["required"] == []  # settings left out keep their values

"""The OpenAPI 3.1 -> Swagger 2.0 conversion of the kernel API document (app/swagger2.py)."""

from __future__ import annotations

from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV2SpecValidator

from app.config import Settings
from app.main import create_app
from app.swagger2 import kernel_api_document, schema


def test_optional_becomes_nullable_and_refs_point_at_definitions() -> None:
    source = {
        "anyOf": [{"$ref": "#/components/schemas/KernelModel"}, {"type": "null"}],
        "title": "Body",
        "description": "a kernel",
    }
    assert schema(source) == {
        "$ref": "#/definitions/KernelModel",
        "x-nullable": True,
        "title": "Body",
        "description": "a kernel",
    }


def test_keywords_swagger_2_lacks_are_dropped_or_translated() -> None:
    source = {
        "type": "object",
        "properties": {
            "gateway": {"const": "fastkg", "type": "string", "examples": ["fastkg"]},
            "env": {
                "anyOf": [{"type": "object", "additionalProperties": {"type": "string"}}, {"type": "null"}]
            },
            "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
        },
        "$defs": {"unused": {}},
    }
    assert schema(source) == {
        "type": "object",
        "properties": {
            "gateway": {"enum": ["fastkg"], "type": "string"},
            "env": {"type": "object", "additionalProperties": {"type": "string"}, "x-nullable": True},
            "either": {},  # a union has no Swagger 2.0 form: any value
        },
    }


def test_document_under_a_base_url_is_valid_and_keeps_only_the_kernel_api() -> None:
    settings = Settings(base_url="/gw", api="jupyter-websocket,notebook-http", seed_uri="examples/api.ipynb")
    document = kernel_api_document(create_app(settings).openapi(), base_url="/gw")
    validate(document, cls=OpenAPIV2SpecValidator)
    assert "/gw/api/kernels/{kernel_id}/channels" in document["paths"]
    assert "/gw/api/sessions/{session_id}" in document["paths"]
    assert all(path.startswith(("/gw/api", "/gw/kernelspecs/")) for path in document["paths"])

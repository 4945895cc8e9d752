"""The kernel API as a Swagger 2.0 document (KG's `/api/swagger.json`), built with apispec from the
OpenAPI 3 document FastAPI generates from fastkg's own routes and models."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from apispec import APISpec

KERNEL_API_TAGS = frozenset({"api", "kernels", "kernelspecs", "sessions", "channels"})

# the keywords a Swagger 2.0 Schema Object may carry (OpenAPI 3.1 / JSON Schema has more)
_SCHEMA_KEYS = frozenset(
    {
        "$ref", "format", "title", "description", "default", "multipleOf", "maximum", "exclusiveMaximum",
        "minimum", "exclusiveMinimum", "maxLength", "minLength", "pattern", "maxItems", "minItems",
        "uniqueItems", "maxProperties", "minProperties", "required", "enum", "additionalProperties", "type",
        "items", "allOf", "properties", "discriminator", "readOnly", "example",
    }
)  # fmt: skip
_PARAMETER_KEYS = frozenset({"type", "format", "items", "default", "enum", "pattern", "minimum", "maximum"})
_AUTH_HELP = (
    "The gateway's token (KG_AUTH_TOKEN), needed only when one is set: `Authorization: token <value>` or "
    "the `token` query argument, which wins when both are given."
)


def schema(source: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON Schema (as pydantic writes it for OpenAPI 3.1) as a Swagger 2.0 Schema Object."""
    source = dict(source)
    alternatives = source.pop("anyOf", None) or source.pop("oneOf", None)
    result: dict[str, Any] = {}
    if alternatives is not None:
        # `X | None` is X, nullable; a union of several types has no 2.0 form: any value
        present = [alt for alt in alternatives if alt.get("type") != "null"]
        if len(present) == 1:
            result.update(schema(present[0]))
        if len(present) < len(alternatives):
            result["x-nullable"] = True
    if "const" in source:
        source.setdefault("enum", [source["const"]])
    for key, value in source.items():
        if key not in _SCHEMA_KEYS and not key.startswith("x-"):
            continue
        if key == "$ref":
            result[key] = value.replace("#/components/schemas/", "#/definitions/")
        elif key == "properties":
            result[key] = {name: schema(item) for name, item in value.items()}
        elif key in ("items", "additionalProperties") and isinstance(value, Mapping):
            result[key] = schema(value)
        elif key == "allOf":
            result[key] = [schema(item) for item in value]
        elif key == "type" and value == "null":
            continue
        else:
            result[key] = value
    return result


def _parameter(source: Mapping[str, Any]) -> dict[str, Any]:
    typed = schema(source.get("schema", {}))
    parameter = {"name": source["name"], "in": source["in"], "required": bool(source.get("required"))}
    if source.get("description"):
        parameter["description"] = source["description"]
    parameter.update({key: value for key, value in typed.items() if key in _PARAMETER_KEYS})
    parameter.setdefault("type", "string")
    return parameter


def _json_schema(content: Mapping[str, Any] | None) -> dict[str, Any] | None:
    media = (content or {}).get("application/json")
    return schema(media["schema"]) if media and "schema" in media else None


def operation(source: Mapping[str, Any]) -> dict[str, Any]:
    """One OpenAPI 3 operation as a Swagger 2.0 operation."""
    result = {key: source[key] for key in ("tags", "summary", "description", "operationId") if key in source}
    parameters = [_parameter(p) for p in source.get("parameters", ()) if p.get("in") in ("path", "query")]
    body = source.get("requestBody")
    if body is not None:
        body_schema = _json_schema(body.get("content")) or {}
        body_schema.pop("title", None)
        parameters.append(
            {"name": "body", "in": "body", "required": bool(body.get("required")), "schema": body_schema}
        )
    if parameters:
        result["parameters"] = parameters
    responses: dict[str, Any] = {}
    for status, response in source.get("responses", {}).items():
        if status == "422":
            continue  # FastAPI documents a validation 422; the gateway answers 400, as Jupyter Server does
        converted = {"description": response.get("description") or "Response"}
        response_schema = _json_schema(response.get("content"))
        if response_schema is not None:
            converted["schema"] = response_schema
        responses[str(status)] = converted
    result["responses"] = responses
    return result


def _channels() -> dict[str, Any]:
    """The websocket, which OpenAPI cannot describe, documented as KG documents it: a GET that upgrades."""
    return {
        "get": {
            "tags": ["channels"],
            "summary": "Upgrades the connection to a websocket of the kernel's channels",
            "description": "Legacy JSON frames, or the v1.kernel.websocket.jupyter.org subprotocol when "
            "the client offers it. A `session_id` identifies the client across reconnects.",
            "operationId": "kernel_channels",
            "parameters": [
                {"name": "kernel_id", "in": "path", "required": True, "type": "string"},
                {"name": "session_id", "in": "query", "required": False, "type": "string"},
            ],
            "responses": {
                "101": {"description": "The connection is upgraded to a websocket"},
                "404": {"description": "No such kernel", "schema": {"$ref": "#/definitions/ErrorModel"}},
            },
        }
    }


def _used_definitions(paths: Mapping[str, Any], definitions: Mapping[str, Any]) -> list[str]:
    """Names of the schemas the paths reach, directly or through other schemas."""
    seen: list[str] = []
    pending = [paths]
    while pending:
        node = pending.pop()
        if isinstance(node, Mapping):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/definitions/"):
                name = ref.removeprefix("#/definitions/")
                if name not in seen and name in definitions:
                    seen.append(name)
                    pending.append(definitions[name])
            pending.extend(node.values())
        elif isinstance(node, list):
            pending.extend(node)
    return sorted(seen)


def kernel_api_document(openapi: Mapping[str, Any], *, base_url: str = "") -> dict[str, Any]:
    """The kernel API's operations of `openapi` (FastAPI's document) as a Swagger 2.0 document."""
    info = openapi.get("info", {})
    spec = APISpec(
        title="fastkg kernel API",
        version=str(info.get("version", "0")),
        openapi_version="2.0",
        info={"description": "Kernel Gateway's kernel API (jupyter-websocket mode), served by fastkg"},
        consumes=["application/json"],
        produces=["application/json"],
        security=[{"tokenHeader": []}, {"tokenParam": []}],
    )
    spec.components.security_scheme(
        "tokenHeader", {"type": "apiKey", "in": "header", "name": "Authorization", "description": _AUTH_HELP}
    )
    spec.components.security_scheme(
        "tokenParam", {"type": "apiKey", "in": "query", "name": "token", "description": _AUTH_HELP}
    )
    paths: dict[str, dict[str, Any]] = {}
    for path, item in openapi.get("paths", {}).items():
        operations = {
            method: operation(op)
            for method, op in item.items()
            if isinstance(op, Mapping) and KERNEL_API_TAGS.intersection(op.get("tags", ()))
        }
        if operations:
            paths[path] = operations
    paths[f"{base_url}/api/kernels/{{kernel_id}}/channels"] = _channels()
    definitions = {
        name: schema(item) for name, item in openapi.get("components", {}).get("schemas", {}).items()
    }
    for name in _used_definitions(paths, definitions):
        spec.components.schema(name, definitions[name])
    for path, operations in sorted(paths.items()):
        spec.path(path=path, operations=operations)
    document: dict[str, Any] = spec.to_dict()
    return document

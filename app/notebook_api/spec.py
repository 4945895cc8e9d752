"""Swagger 2.0 document describing the notebook's HTTP API, built with apispec."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from apispec import APISpec

from app.notebook_api.parsers import Endpoint

_DEFAULT_RESPONSES = {"200": {"description": "Success"}}  # what KG lists for every operation
_OWN_KEYS = ("swagger", "info", "paths")


def swagger_document(
    title: str,
    endpoints: Sequence[Endpoint],
    *,
    base_path: str = "",
    document: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The Swagger 2.0 spec KG serves at `/_api/spec/swagger.json`, with `{name}` path templates.

    `title` is the notebook name; `base_path` becomes `basePath` when set. In Swagger-parser mode
    pass the notebook's own `document` (ParsedNotebook.swagger): its info and top-level sections
    are kept and each endpoint's own operation object is used verbatim, completed with any path
    parameter it does not declare. Only served endpoints are listed (KG also echoes unbound ones).
    """
    source = document or {}
    info = dict(source.get("info") or {})
    options = {key: value for key, value in source.items() if key not in _OWN_KEYS}
    if base_path:
        options["basePath"] = base_path
    spec = APISpec(
        title=str(info.pop("title", title)),
        version=str(info.pop("version", "0.0.0")),
        openapi_version="2.0",
        info=info,
        **copy.deepcopy(options),
    )
    declared: list[Endpoint] = []
    for endpoint in endpoints:
        if endpoint.operation is None:
            spec.path(path=endpoint.openapi_path, operations={endpoint.verb.lower(): _generated(endpoint)})
        else:
            declared.append(endpoint)
    result: dict[str, Any] = spec.to_dict()
    paths = result.setdefault("paths", {})
    for endpoint in declared:
        paths.setdefault(endpoint.openapi_path, {})[endpoint.verb.lower()] = _declared(endpoint)
    return result


def _generated(endpoint: Endpoint) -> dict[str, Any]:
    operation: dict[str, Any] = {}
    if endpoint.summary:
        operation["summary"] = endpoint.summary
    if endpoint.description:
        operation["description"] = endpoint.description
    parameters = [_path_parameter(name) for name in endpoint.param_names]
    if parameters:
        operation["parameters"] = parameters
    operation["responses"] = copy.deepcopy(_DEFAULT_RESPONSES)
    return operation


def _declared(endpoint: Endpoint) -> dict[str, Any]:
    """The notebook's own operation; KG-style parameters with no `in` are path parameters."""
    operation = copy.deepcopy(dict(endpoint.operation or {}))
    raw = operation.get("parameters")
    parameters: list[Any] = raw if isinstance(raw, list) else []
    in_path: set[str] = set()
    for parameter in parameters:
        if isinstance(parameter, dict) and parameter.get("name") in endpoint.param_names:
            if "in" not in parameter:
                parameter.update({"in": "path", "required": True})
                parameter.setdefault("type", "string")
            if parameter["in"] == "path":
                in_path.add(parameter["name"])
    parameters += [_path_parameter(name) for name in endpoint.param_names if name not in in_path]
    if parameters:
        operation["parameters"] = parameters
    operation.setdefault("responses", copy.deepcopy(_DEFAULT_RESPONSES))
    return operation


def _path_parameter(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "type": "string"}

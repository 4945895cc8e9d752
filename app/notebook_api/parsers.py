"""Turn notebook cells into HTTP endpoints: KG's annotation grammar and its Swagger operationId grammar."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, TypeVar
from urllib.parse import unquote

# KG serves GET, POST, PUT and DELETE; PATCH is a fastkg extension.
VERBS = ("GET", "POST", "PUT", "DELETE", "PATCH")
_VERB = "(" + "|".join(VERBS) + ")"
_PARAM = re.compile(r":([^/\s]+)")  # a `:name` path parameter, as KG's parameterize_path reads it
_HS = r"[^\S\r\n]"  # whitespace that does not leave the annotation's (first) line
_SLASH_COMMENT = frozenset(
    {"scala", "java", "javascript", "typescript", "c", "c++", "cpp", "c#", "csharp", "f#", "fsharp"}
    | {"go", "rust", "kotlin", "swift", "groovy", "dart", "php"}
)
_DASH_COMMENT = frozenset({"haskell", "lua", "sql"})
_K = TypeVar("_K", str, tuple[str, str])


class NotebookError(ValueError):
    """The notebook cannot be read or does not describe a usable HTTP API; the message is user-facing."""


def comment_prefix(language: str) -> str:
    """Single-line comment token of a kernel language; KG maps scala to `//` and everything else to `#`."""
    name = language.strip().lower()
    if name in _SLASH_COMMENT:
        return "//"
    return "--" if name in _DASH_COMMENT else "#"


@dataclass(frozen=True)
class Endpoint:
    """One verb on one notebook path (KG form, `/items/:id`) and the kernel code that serves it."""

    verb: str
    path: str
    source: str
    response_source: str | None = None
    operation_id: str | None = None
    summary: str | None = None
    description: str | None = None
    operation: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)

    @property
    def param_names(self) -> list[str]:
        return _PARAM.findall(self.path)

    @property
    def openapi_path(self) -> str:
        return _PARAM.sub(r"{\1}", self.path)


@dataclass(frozen=True)
class RouteMatch:
    """The first notebook path matching a request; `endpoint` is None when its verb is not served (405)."""

    path: str
    path_params: dict[str, str]
    endpoint: Endpoint | None
    allowed: list[str]


@dataclass(frozen=True)
class ParsedNotebook:
    """Endpoints in KG's routing order, the cells every kernel runs at start-up, and parse warnings."""

    endpoints: list[Endpoint]
    startup_sources: list[str]
    warnings: list[str] = field(default_factory=list)
    swagger: dict[str, Any] | None = None

    @cached_property
    def paths(self) -> dict[str, list[str]]:
        """Path -> verbs it serves, in routing order (first matching path wins, as with KG's handlers)."""
        out: dict[str, list[str]] = {}
        for endpoint in self.endpoints:
            out.setdefault(endpoint.path, []).append(endpoint.verb)
        return out

    @cached_property
    def _routes(self) -> list[tuple[str, re.Pattern[str], dict[str, Endpoint]]]:
        by_path: dict[str, dict[str, Endpoint]] = {}
        for endpoint in self.endpoints:
            by_path.setdefault(endpoint.path, {})[endpoint.verb] = endpoint
        return [(path, _path_regex(path), verbs) for path, verbs in by_path.items()]

    def match(self, verb: str, raw_path: str) -> RouteMatch | None:
        """Route a request path (still percent-encoded, like Tornado matches it); None means 404.

        Parameter values are percent-decoded after matching, so `%2F` stays inside one segment.
        """
        for path, regex, verbs in self._routes:
            found = regex.fullmatch(raw_path)
            if found is None:
                continue
            values = (unquote(value, errors="replace") for value in found.groups())
            params = dict(zip(_PARAM.findall(path), values, strict=True))
            return RouteMatch(path, params, verbs.get(verb.upper()), list(verbs))
        return None


def parse_annotated_cells(sources: Iterable[str], prefix: str) -> ParsedNotebook:
    """KG's default parser over code cells: `<prefix> VERB /path` and `<prefix> ResponseInfo VERB /path`.

    The annotation must open the cell. Cells sharing a verb and path are concatenated in notebook
    order, each followed by a newline (annotation line included, as KG sends the whole cell).
    """
    token = re.escape(prefix)
    api = re.compile(rf"{token}{_HS}+{_VERB}{_HS}+(/.*)")
    info = re.compile(rf"{token}{_HS}+ResponseInfo{_HS}+{_VERB}{_HS}+(/.*)")
    code: dict[tuple[str, str], str] = {}
    responses: dict[tuple[str, str], str] = {}
    startup: list[str] = []
    for source in sources:
        if found := api.match(source):
            _append(code, (found[2].strip(), found[1]), source)
        elif found := info.match(source):
            _append(responses, (found[2].strip(), found[1]), source)
        else:
            startup.append(source)
    endpoints = [Endpoint(v, p, text, responses.get((p, v))) for (p, v), text in code.items()]
    warnings = [f"ResponseInfo {v} {p} has no endpoint cell" for p, v in responses if (p, v) not in code]
    return _finish(endpoints, startup, warnings)


def parse_swagger_cells(cells: Sequence[tuple[str, str]], prefix: str) -> ParsedNotebook:
    """KG's Swagger parser over `(cell_type, source)` pairs in notebook order.

    Markdown cells carry a Swagger 2.0 JSON document (fenced or plain; several are merged key by key).
    Code cells opening with `<prefix> operationId: name` (or `<prefix> ResponseInfo operationId: name`)
    are bound to that operation; its verb and path come from the document, `{x}` becomes `:x`, and
    each named parameter with no `in` or `in: path` not already in the path is appended as `/:name`
    (KG appends every named parameter). Unbound operations and undeclared ids are only warned about.
    """
    document = _swagger_document(source for kind, source in cells if kind == "markdown")
    token = re.escape(prefix)
    operation = re.compile(rf"{token}{_HS}*operationId:{_HS}*(.*)")
    info = re.compile(rf"{token}{_HS}*ResponseInfo{_HS}+operationId:{_HS}*(.*)")
    code: dict[str, str] = {}
    responses: dict[str, str] = {}
    startup: list[str] = []
    for kind, source in cells:
        if kind != "code":
            continue
        if found := operation.match(source):
            _append(code, found[1].strip(), source)
        elif found := info.match(source):
            _append(responses, found[1].strip(), source)
        else:
            startup.append(source)
    endpoints, declared = _bind_operations(document["paths"], code, responses)
    warnings = [f"operation {op!r} is used by a cell but not declared" for op in code if op not in declared]
    warnings += [f"operation {op!r} is declared but no cell uses it" for op in declared if op not in code]
    return _finish(endpoints, startup, warnings, document)


def _append(store: dict[_K, str], key: _K, source: str) -> None:
    store[key] = store.get(key, "") + source + "\n"


def _path_regex(path: str) -> re.Pattern[str]:
    parts = _PARAM.split(path)  # literal, name, literal, name, ..., literal
    return re.compile("".join("([^/]+)" if i % 2 else re.escape(part) for i, part in enumerate(parts)))


def _kg_sort_key(path: str) -> int:
    """KG's first_path_param_index: depth of the first parameter, or sys.maxsize when there is none."""
    colon = path.find(":")
    return sys.maxsize if colon < 0 else path.count("/", 0, colon) - 1


def _finish(
    endpoints: list[Endpoint], startup: list[str], warnings: list[str], swagger: dict[str, Any] | None = None
) -> ParsedNotebook:
    """Group by path and order the paths as KG does: sorted(key=first param depth, reverse=True), stable."""
    groups: dict[str, dict[str, Endpoint]] = {}
    for endpoint in endpoints:
        names = endpoint.param_names
        if len(set(names)) != len(names):
            raise NotebookError(f"Endpoint path {endpoint.path!r} repeats a parameter name")
        verbs = groups.setdefault(endpoint.path, {})
        if endpoint.verb in verbs:
            warnings.append(f"{endpoint.verb} {endpoint.path} is declared twice; the first one is served")
            continue
        verbs[endpoint.verb] = endpoint
    ordered = sorted(groups, key=_kg_sort_key, reverse=True)
    shapes: dict[str, str] = {}
    for path in ordered:
        earlier = shapes.setdefault(_PARAM.sub(":", path), path)
        if earlier != path:
            warnings.append(f"path {path!r} is unreachable: {earlier!r} matches the same requests first")
    served = [endpoint for path in ordered for endpoint in groups[path].values()]
    return ParsedNotebook(served, startup, warnings, swagger)


def _swagger_document(markdown_sources: Iterable[str]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for source in markdown_sources:
        document.update(_swaggerlet(source) or {})
    if not document:
        raise NotebookError("No Swagger document (JSON with a 'swagger' key) in the notebook's markdown")
    if not isinstance(document.get("paths"), dict):
        raise NotebookError("The notebook's Swagger document has no 'paths' object")
    return document


def _swaggerlet(source: str) -> dict[str, Any] | None:
    """KG's rule: the first fenced block of a cell of three or more lines, else the whole cell."""
    lines = source.splitlines()
    if len(lines) > 2:
        start = next((i for i, line in enumerate(lines) if line.startswith("```")), -1)
        lines = lines[start + 1 :]
        end = next((i for i, line in enumerate(lines) if line.startswith("```")), len(lines))
        lines = lines[:end]
    text = "\n".join(lines)
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:
        if '"swagger"' in text:
            raise NotebookError(f"Malformed Swagger JSON in a markdown cell: {exc}") from None
        return None
    return value if isinstance(value, dict) and "swagger" in value else None


def _bind_operations(
    paths: Mapping[str, Any], code: Mapping[str, str], responses: Mapping[str, str]
) -> tuple[list[Endpoint], list[str]]:
    endpoints: list[Endpoint] = []
    declared: list[str] = []
    for raw_path, item in paths.items():
        if not isinstance(item, dict):
            continue
        shared = _list(item.get("parameters"))
        for method, operation in item.items():
            op_id = operation.get("operationId") if isinstance(operation, dict) else None
            if method.upper() not in VERBS or not isinstance(op_id, str):
                continue
            declared.append(op_id)
            if op_id in code:
                path = _kg_path(raw_path, [*shared, *_list(operation.get("parameters"))])
                endpoint = _swagger_endpoint(method.upper(), path, operation, code[op_id])
                endpoints.append(replace(endpoint, response_source=responses.get(op_id)))
    return endpoints, declared


def _swagger_endpoint(verb: str, path: str, operation: dict[str, Any], source: str) -> Endpoint:
    summary, description = operation.get("summary"), operation.get("description")
    return Endpoint(
        verb=verb,
        path=path,
        source=source,
        operation_id=operation["operationId"],
        summary=summary if isinstance(summary, str) else None,
        description=description if isinstance(description, str) else None,
        operation=operation,
    )


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _kg_path(raw_path: str, parameters: list[Any]) -> str:
    path = re.sub(r"\{([^}/]+)\}", r":\1", raw_path)
    for parameter in parameters:
        name = parameter.get("name") if isinstance(parameter, dict) else None
        in_path = isinstance(name, str) and parameter.get("in", "path") == "path"
        if in_path and name not in _PARAM.findall(path):
            path = f"{path.rstrip('/')}/:{name}"
    return path or "/"

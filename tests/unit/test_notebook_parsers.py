"""Notebook-http cell parsers: KG annotation grammar, Swagger operationId grammar, routing order."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest

from app.notebook_api.parsers import (
    Endpoint,
    NotebookError,
    comment_prefix,
    parse_annotated_cells,
    parse_swagger_cells,
)


@pytest.mark.parametrize(
    ("language", "prefix"),
    [
        ("python", "#"),
        ("R", "#"),
        ("bash", "#"),
        ("perl", "#"),
        ("julia", "#"),
        ("", "#"),
        ("scala", "//"),
        ("Scala", "//"),
        ("javascript", "//"),
        ("java", "//"),
        ("C++", "//"),
        ("go", "//"),
        ("rust", "//"),
        ("haskell", "--"),
    ],
)
def test_comment_prefix(language: str, prefix: str) -> None:
    assert comment_prefix(language) == prefix


def test_paths_are_ordered_like_kg_with_parameterised_paths_last() -> None:
    cells = [
        "# POST /:foo\n",
        "# GET /hello/:foo",
        "# POST /hello/:foo",
        "# PUT /hello/world",
        "# GET /a/b/c/:x",
    ]
    parsed = parse_annotated_cells(cells, "#")
    assert list(parsed.paths) == ["/hello/world", "/a/b/c/:x", "/hello/:foo", "/:foo"]
    assert parsed.paths["/hello/:foo"] == ["GET", "POST"]
    assert [(e.verb, e.path) for e in parsed.endpoints] == [
        ("PUT", "/hello/world"),
        ("GET", "/a/b/c/:x"),
        ("GET", "/hello/:foo"),
        ("POST", "/hello/:foo"),
        ("POST", "/:foo"),
    ]


def test_equal_sort_keys_keep_notebook_order() -> None:
    cells = ["# GET /zeta", "# GET /alpha", "# GET /z/:id", "# GET /a/:id", "# GET /b/x:id"]
    assert list(parse_annotated_cells(cells, "#").paths) == ["/zeta", "/alpha", "/z/:id", "/a/:id", "/b/x:id"]


def test_same_verb_and_path_concatenate_in_notebook_order() -> None:
    first, other, second = "# GET /multi\nx = 1", "# GET /other\npass", "# GET /multi\nprint(x)"
    parsed = parse_annotated_cells([first, other, "y = 2", second], "#")
    (multi,) = [e for e in parsed.endpoints if e.path == "/multi"]
    assert multi.source == f"{first}\n{second}\n"
    assert parsed.startup_sources == ["y = 2"]


def test_response_info_cells_bind_to_verb_and_path() -> None:
    cells = [
        "# GET /json\nprint('{}')",
        "# ResponseInfo GET /json\nprint(1)",
        "# POST /json\npass",
        "# ResponseInfo GET /json\nprint(2)",
        "# ResponseInfo PUT /nothing\nprint(3)",
    ]
    parsed = parse_annotated_cells(cells, "#")
    by_verb = {e.verb: e for e in parsed.endpoints}
    assert (
        by_verb["GET"].response_source
        == "# ResponseInfo GET /json\nprint(1)\n# ResponseInfo GET /json\nprint(2)\n"
    )
    assert by_verb["POST"].response_source is None
    assert parsed.startup_sources == []
    assert parsed.warnings == ["ResponseInfo PUT /nothing has no endpoint cell"]


@pytest.mark.parametrize(
    "source",
    [
        "#GET /x",  # KG needs whitespace after the comment token
        "# get /x",  # verbs are case-sensitive
        "# GET x",  # paths start with a slash
        "# HEAD /x",
        "x = 1\n# GET /x",  # the annotation must open the cell
        " # GET /x",
        "#\nGET /x",  # ... and sit on its first line
        "// GET /x",
    ],
)
def test_cells_that_are_not_annotations_run_at_startup(source: str) -> None:
    parsed = parse_annotated_cells([source], "#")
    assert parsed.endpoints == []
    assert parsed.startup_sources == [source]


def test_annotation_details() -> None:
    parsed = parse_annotated_cells(["#\t PATCH   /items/:id  \r\nprint(1)", "// DELETE /gone"], "#")
    assert [(e.verb, e.path) for e in parsed.endpoints] == [("PATCH", "/items/:id")]
    slashes = parse_annotated_cells(["// DELETE /gone\nprintln(1)", "# GET /x"], "//")
    assert [(e.verb, e.path) for e in slashes.endpoints] == [("DELETE", "/gone")]
    assert slashes.startup_sources == ["# GET /x"]


def test_endpoint_parameter_helpers() -> None:
    endpoint = Endpoint("GET", "/hello/:first/x/:last", "")
    assert endpoint.param_names == ["first", "last"]
    assert endpoint.openapi_path == "/hello/{first}/x/{last}"
    assert Endpoint("GET", "/plain", "").param_names == []


def test_repeated_parameter_name_is_rejected() -> None:
    with pytest.raises(NotebookError, match="repeats a parameter"):
        parse_annotated_cells(["# GET /a/:id/b/:id"], "#")


def test_match_routes_404_405_and_decodes_parameters() -> None:
    parsed = parse_annotated_cells(["# GET /hello/:name", "# PUT /message", "# GET /a.b"], "#")
    hit = parsed.match("get", "/hello/caf%C3%A9%2Fx")
    assert hit is not None
    assert hit.endpoint is not None
    assert (hit.path, hit.path_params, hit.endpoint.verb) == ("/hello/:name", {"name": "café/x"}, "GET")
    missing_verb = parsed.match("DELETE", "/message")
    assert missing_verb is not None
    assert (missing_verb.endpoint, missing_verb.allowed) == (None, ["PUT"])
    assert parsed.match("GET", "/hello") is None
    assert parsed.match("GET", "/hello/a/b") is None
    assert parsed.match("GET", "/message/") is None
    assert parsed.match("GET", "/axb") is None  # literal segments are not regexes


def test_first_matching_path_wins_like_kg_handlers() -> None:
    parsed = parse_annotated_cells(["# GET /items/:id", "# POST /items/new", "# POST /items/:key"], "#")
    new = parsed.match("GET", "/items/new")
    assert new is not None
    assert (new.path, new.endpoint) == ("/items/new", None)  # KG answers 405 here
    shadowed = parsed.match("POST", "/items/7")
    assert shadowed is not None
    assert (shadowed.path, shadowed.endpoint, shadowed.path_params) == ("/items/:id", None, {"id": "7"})
    assert parsed.warnings == [
        "path '/items/:key' is unreachable: '/items/:id' matches the same requests first"
    ]


def _swagger_cell(document: Mapping[str, Any], fenced: bool = True) -> tuple[str, str]:
    text = json.dumps(document, indent=1)
    return ("markdown", f"# The API\n```json\n{text}\n```\nmore prose" if fenced else text)


KG_SORT_DOC = {
    "swagger": "2.0",
    "paths": {
        "": {"post": {"operationId": "postRoot", "parameters": [{"name": "foo"}]}},
        "/hello": {
            "post": {"operationId": "postHello", "parameters": [{"name": "foo"}]},
            "get": {"operationId": "getHello", "parameters": [{"name": "foo"}]},
        },
        "/hello/world": {"put": {"operationId": "putWorld"}},
    },
}


def test_swagger_mode_orders_and_appends_kg_style_parameters() -> None:
    ops = ["putWorld", "getHello", "postHello", "postRoot"]
    cells = [_swagger_cell(KG_SORT_DOC), *[("code", f"# operationId:{op}") for op in ops]]
    parsed = parse_swagger_cells(cells, "#")
    assert list(parsed.paths) == ["/hello/world", "/hello/:foo", "/:foo"]
    assert parsed.paths["/hello/:foo"] == ["POST", "GET"]
    assert parsed.swagger is not None
    assert parsed.swagger["paths"] == KG_SORT_DOC["paths"]


def test_swagger_mode_binds_cells_by_operation_id() -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "Pets", "version": "1.0"},
        "paths": {
            "/pets/{petId}": {
                "get": {
                    "operationId": "getPet",
                    "summary": "Find a pet",
                    "parameters": [{"name": "petId", "in": "path"}, {"name": "q", "in": "query"}],
                },
                "delete": {"operationId": "dropPet"},
            },
            "/pets": {"post": {"operationId": "addPet"}, "parameters": [{"name": "x", "in": "header"}]},
        },
    }
    cells = [
        ("code", "import json"),
        ("code", "# operationId: getPet \nprint(1)"),
        _swagger_cell(doc, fenced=False),
        ("code", "# operationId: addPet"),
        ("code", "# operationId:getPet\nprint(2)"),
        ("code", "# ResponseInfo operationId: getPet\nprint('{}')"),
        ("code", "# operationId: ghost"),
        ("markdown", "# operationId: addPet"),
    ]
    parsed = parse_swagger_cells(cells, "#")
    assert [(e.verb, e.path, e.operation_id) for e in parsed.endpoints] == [
        ("POST", "/pets", "addPet"),
        ("GET", "/pets/:petId", "getPet"),
    ]
    get = parsed.endpoints[1]
    assert get.source == "# operationId: getPet \nprint(1)\n# operationId:getPet\nprint(2)\n"
    assert get.response_source == "# ResponseInfo operationId: getPet\nprint('{}')\n"
    assert get.summary == "Find a pet"
    assert get.operation is not None
    assert get.operation["operationId"] == "getPet"
    assert parsed.startup_sources == ["import json"]
    assert parsed.warnings == [
        "operation 'ghost' is used by a cell but not declared",
        "operation 'dropPet' is declared but no cell uses it",
    ]


def test_swagger_documents_in_several_cells_merge() -> None:
    cells = [
        ("markdown", "Intro prose, not JSON."),
        _swagger_cell({"swagger": "2.0", "paths": {"/old": {"get": {"operationId": "old"}}}}),
        _swagger_cell({"swagger": "2.0", "paths": {"/new": {"get": {"operationId": "new"}}}}),
        ("code", "# operationId: new"),
        ("code", "# operationId: old"),
    ]
    parsed = parse_swagger_cells(cells, "#")
    assert list(parsed.paths) == ["/new"]


@pytest.mark.parametrize(
    ("cells", "message"),
    [
        ([("markdown", "just prose"), ("code", "# operationId: x")], "No Swagger document"),
        ([("markdown", '```\n{"swagger": "2.0", "paths": {\n```')], "Malformed Swagger JSON"),
        ([("markdown", '{"swagger": "2.0", "info": {}}')], "no 'paths'"),
    ],
)
def test_swagger_mode_errors(cells: list[tuple[str, str]], message: str) -> None:
    with pytest.raises(NotebookError, match=message):
        parse_swagger_cells(cells, "#")

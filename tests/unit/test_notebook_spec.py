"""Swagger 2.0 document for notebook-http endpoints, in both parser modes."""

from __future__ import annotations

import json

from app.notebook_api.parsers import Endpoint, parse_annotated_cells, parse_swagger_cells
from app.notebook_api.spec import swagger_document


def test_matches_kg_output_for_a_simple_notebook() -> None:
    parsed = parse_annotated_cells(["# GET /name\nprint(1)", "# POST /name\npass", "x = 1"], "#")
    assert swagger_document("simple_api", parsed.endpoints) == {
        "info": {"version": "0.0.0", "title": "simple_api"},
        "paths": {
            "/name": {
                "get": {"responses": {"200": {"description": "Success"}}},
                "post": {"responses": {"200": {"description": "Success"}}},
            }
        },
        "swagger": "2.0",
    }


def test_path_parameters_use_templates_and_are_declared() -> None:
    parsed = parse_annotated_cells(
        ["# GET /people/:id/pets/:pet", "# DELETE /people/:id/pets/:pet", "# GET /"], "#"
    )
    document = swagger_document("api", parsed.endpoints, base_path="/base")
    assert document["basePath"] == "/base"
    assert list(document["paths"]) == ["/", "/people/{id}/pets/{pet}"]
    item = document["paths"]["/people/{id}/pets/{pet}"]
    assert set(item) == {"get", "delete"}
    assert item["get"]["parameters"] == [
        {"name": "id", "in": "path", "required": True, "type": "string"},
        {"name": "pet", "in": "path", "required": True, "type": "string"},
    ]
    json.dumps(document)  # serialisable as is


def test_generated_operations_carry_summary_and_description() -> None:
    endpoint = Endpoint("PATCH", "/x", "", summary="Short", description="Long")
    operation = swagger_document("t", [endpoint])["paths"]["/x"]["patch"]
    assert operation == {
        "summary": "Short",
        "description": "Long",
        "responses": {"200": {"description": "Success"}},
    }


def test_swagger_mode_keeps_the_notebooks_own_document() -> None:
    doc = {
        "swagger": "2.0",
        "info": {"version": "2.1", "description": "Pet store"},
        "definitions": {"Pet": {"type": "object"}},
        "paths": {
            "/pets/{petId}": {
                "get": {
                    "operationId": "getPet",
                    "parameters": [{"name": "petId", "in": "path", "required": True, "type": "integer"}],
                    "responses": {"200": {"description": "A pet", "schema": {"$ref": "#/definitions/Pet"}}},
                }
            },
            "/owners": {"post": {"operationId": "addOwner", "parameters": [{"name": "ownerId"}]}},
            "/unused": {"get": {"operationId": "unused"}},
        },
    }
    cells = [
        ("markdown", json.dumps(doc)),
        ("code", "# operationId: getPet"),
        ("code", "# operationId: addOwner"),
    ]
    parsed = parse_swagger_cells(cells, "#")
    document = swagger_document("petstore", parsed.endpoints, document=parsed.swagger)
    assert document["info"] == {"title": "petstore", "version": "2.1", "description": "Pet store"}
    assert document["definitions"] == {"Pet": {"type": "object"}}
    assert list(document["paths"]) == ["/pets/{petId}", "/owners/{ownerId}"]
    assert document["paths"]["/pets/{petId}"]["get"] == doc["paths"]["/pets/{petId}"]["get"]  # type: ignore[index]
    owner = document["paths"]["/owners/{ownerId}"]["post"]
    assert owner["operationId"] == "addOwner"
    assert owner["parameters"] == [{"name": "ownerId", "in": "path", "required": True, "type": "string"}]
    assert owner["responses"] == {"200": {"description": "Success"}}
    assert "in" not in doc["paths"]["/owners"]["post"]["parameters"][0]  # type: ignore[index]


def test_swagger_mode_title_from_document_and_missing_path_parameter_added() -> None:
    doc = {
        "swagger": "2.0",
        "info": {"title": "Declared", "version": "1"},
        "paths": {"/a/{id}": {"get": {"operationId": "a", "parameters": [{"name": "q", "in": "query"}]}}},
    }
    parsed = parse_swagger_cells([("markdown", json.dumps(doc)), ("code", "# operationId: a")], "#")
    document = swagger_document("notebook", parsed.endpoints, document=parsed.swagger, base_path="/api")
    assert document["info"]["title"] == "Declared"
    assert document["basePath"] == "/api"
    assert document["paths"]["/a/{id}"]["get"]["parameters"] == [
        {"name": "q", "in": "query"},
        {"name": "id", "in": "path", "required": True, "type": "string"},
    ]

"""Beyond KG: the notebook API in the app's OpenAPI 3 document and Swagger UI, served side by side with the
kernel API by one process (`api=["jupyter-websocket", "notebook-http"]`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import nbformat
import pytest
import pytest_asyncio
from fastapi.routing import APIRoute
from nbformat.v4 import new_code_cell, new_notebook

from tests.support import Gateway, serve, stdout_of

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "openapi-token-0123456789"
NAME = "nb_openapi"
CELLS = [
    "import json\nSTARTUP_DONE = 'yes'",
    "# GET /hello\nprint('hello')",
    "# GET /items/:id\nprint(json.loads(REQUEST)['path']['id'])",
    "# POST /items\nprint(json.dumps(json.loads(REQUEST)['body']))",
    "# PUT /items/:id\nprint('put')",
    "# PATCH /items/:id\nprint('patch')",
    "# DELETE /items/:id\nprint('delete')",
    "# GET /users/:uid/posts/:pid\nprint(json.dumps(json.loads(REQUEST)['path']))",
    "# GET /files/:file-name\nprint(json.dumps(json.loads(REQUEST)['path']))",
]
# (OpenAPI path, method, path parameters) of every notebook endpoint.
ROUTES = [
    ("/hello", "get", []),
    ("/items/{id}", "get", ["id"]),
    ("/items", "post", []),
    ("/items/{id}", "put", ["id"]),
    ("/items/{id}", "patch", ["id"]),
    ("/items/{id}", "delete", ["id"]),
    ("/users/{uid}/posts/{pid}", "get", ["uid", "pid"]),
]
BODY_TYPES = {"application/json", "application/x-www-form-urlencoded", "multipart/form-data", "text/plain"}


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def both(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    notebook = new_notebook(cells=[new_code_cell(cell) for cell in CELLS])
    notebook.metadata = {
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    }
    path = tmp_path_factory.mktemp("openapi") / f"{NAME}.ipynb"
    nbformat.write(notebook, str(path))
    async with serve(
        api=["jupyter-websocket", "notebook-http"],
        seed_uri=str(path),
        auth_token=TOKEN,
        list_kernels=True,
    ) as gw:
        yield gw


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def document(both: Gateway) -> dict[str, Any]:
    response = await both.client.get("/openapi.json")
    assert response.status_code == 200
    value: dict[str, Any] = response.json()
    return value


async def test_openapi_3_lists_every_notebook_route(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.")
    for path, method, params in ROUTES:
        assert path in document["paths"], f"{path} missing: {sorted(document['paths'])}"
        operation = document["paths"][path].get(method)
        assert operation is not None, f"{method.upper()} {path} missing"
        assert operation["tags"] == [NAME]
        declared = [(p["name"], p["in"], p["required"]) for p in operation.get("parameters", [])]
        assert declared == [(name, "path", True) for name in params], (path, method, declared)


async def test_request_body_content_types(document: dict[str, Any]) -> None:
    for path, method, _ in ROUTES:
        operation = document["paths"][path][method]
        if method in ("post", "put", "patch"):
            assert set(operation["requestBody"]["content"]) >= BODY_TYPES, (path, method)
        if method == "get":
            assert "requestBody" not in operation, (path, method)


async def test_each_route_appears_exactly_once(both: Gateway, document: dict[str, Any]) -> None:
    operations = [
        (path, method, op.get("operationId"))
        for path, item in document["paths"].items()
        for method, op in item.items()
    ]
    ids = [op_id for _, _, op_id in operations]
    assert len(ids) == len(set(ids)), "duplicate operationIds"
    # Only the annotated verbs are documented (the hidden 405 routes are not).
    assert set(document["paths"]["/hello"]) == {"get"}
    assert set(document["paths"]["/items"]) == {"post"}
    assert set(document["paths"]["/items/{id}"]) == {"get", "put", "patch", "delete"}
    # The kernel API is there too, once.
    assert {"get", "post"} <= set(document["paths"]["/api/kernels"])
    assert "/api/kernels/{kernel_id}" in document["paths"]
    # KG's Swagger 2.0 spec route belongs to the notebook's tag.
    assert document["paths"]["/_api/spec/swagger.json"]["get"]["tags"] == [NAME]
    # And the notebook's router (the app's first route) holds each (path, verb) of the notebook once.
    assert both.app is not None
    documented = [*both.app.state.notebook_slot.documented_routes, *both.app.routes]
    served = [
        (route.path, method)
        for route in documented
        if isinstance(route, APIRoute) and route.include_in_schema
        for method in route.methods
    ]
    for path, method, _ in ROUTES:
        assert served.count((path, method.upper())) == 1, (path, method)


async def test_kg_swagger_paths_carry_the_kernel_api(both: Gateway, document: dict[str, Any]) -> None:
    """KG's /api/swagger.json is the kernel API in Swagger 2.0; the notebook's is /_api/spec/swagger.json."""
    response = await both.client.get("/api/swagger.json")
    assert response.status_code == 200
    swagger = response.json()
    assert swagger["swagger"] == "2.0"
    kernel_paths = {path for path in document["paths"] if path.startswith(("/api", "/kernelspecs/"))}
    assert set(swagger["paths"]) == kernel_paths | {"/api/kernels/{kernel_id}/channels"}


async def test_docs_page_is_served(both: Gateway) -> None:
    page = await both.client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "swagger-ui" in page.text.lower()
    assert "/openapi.json" in page.text
    script = await both.client.get("/docs/static/swagger-ui-bundle.js")
    assert script.status_code == 200
    assert len(script.content) > 10_000


async def test_non_identifier_parameter_names_still_work(both: Gateway, document: dict[str, Any]) -> None:
    response = await both.client.get("/files/report.pdf")
    assert response.json() == {"file-name": "report.pdf"}
    (path,) = [p for p in document["paths"] if p.startswith("/files/")]
    (parameter,) = document["paths"][path]["get"]["parameters"]
    assert parameter["in"] == "path"
    assert path == "/files/{" + parameter["name"] + "}"


async def test_both_personalities_serve_side_by_side(both: Gateway) -> None:
    assert (await both.client.get("/hello")).text == "hello\n"
    assert (await both.client.post("/items", json={"a": 1})).json() == {"a": 1}
    # The notebook's pool kernels are private: the kernel API does not list them.
    listed = await both.client.get("/api/kernels")
    assert listed.status_code == 200
    assert listed.json() == []
    kernel_id = await both.start_kernel()
    try:
        ws = await both.connect(kernel_id)
        try:
            # A kernel started through the kernel API is seeded with the notebook's startup cells only.
            reply, outputs = await ws.execute("print(STARTUP_DONE)")
            assert reply["status"] == "ok", reply
            assert stdout_of(outputs) == "yes\n"
        finally:
            await ws.close()
        assert [k["id"] for k in (await both.client.get("/api/kernels")).json()] == [kernel_id]
        # The notebook routes still answer while a kernel-API kernel runs.
        assert (await both.client.get("/items/5")).text == "5\n"
    finally:
        assert (await both.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204

"""notebook-http: Kernel Gateway's semantics and fastkg's rich responses and error detail, on real kernels.

One notebook (`nb_semantics`, written to a temporary directory next to the test data it needs) is served
once for the module with a token, CORS, notebook download and a static directory; smaller notebooks cover
the configurations that must differ (debug, no download, base URL, the Swagger cell parser).
"""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
import pytest_asyncio
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.support import Gateway, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "nb-token-0123456789"
ORIGIN = "https://client.example"

# Builds PNG_BYTES (a 2x2 RGB image) without PIL; run both in the notebook and in the test.
PNG_CODE = r"""
import struct as _struct, zlib as _zlib

def _png_chunk(kind, data):
    return _struct.pack('>I', len(data)) + kind + data + _struct.pack('>I', _zlib.crc32(kind + data))

PNG_BYTES = (
    b'\x89PNG\r\n\x1a\n'
    + _png_chunk(b'IHDR', _struct.pack('>IIBBBBB', 2, 2, 8, 2, 0, 0, 0))
    + _png_chunk(b'IDAT', _zlib.compress(b'\x00\xff\x00\x00\x00\xff\x00\x00\x00\x00\xff\x00\x00\xff'))
    + _png_chunk(b'IEND', b'')
)
"""


def png_bytes() -> bytes:
    namespace: dict[str, Any] = {}
    exec(PNG_CODE, namespace)
    value = namespace["PNG_BYTES"]
    assert isinstance(value, bytes)
    return value


def write_notebook(
    path: Path, cells: list[str | tuple[str, str]], kernel: str = "python3", language: str = "python"
) -> Path:
    """An nbformat-4 notebook; a plain string is a code cell, ("markdown", text) a markdown cell."""
    notebook = new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": kernel, "language": language, "display_name": kernel},
        "language_info": {"name": language},
    }
    notebook.cells = [
        new_markdown_cell(cell[1]) if isinstance(cell, tuple) else new_code_cell(cell) for cell in cells
    ]
    nbformat.write(notebook, str(path))
    return path


def semantics_cells(startup_log: Path) -> list[str | tuple[str, str]]:
    return [
        ("markdown", "# Semantics\nEvery KG notebook-http rule, one endpoint each."),
        # Startup cells: run once on every pool kernel, never as part of a request.
        "import json, os, sys\n"
        f"with open({str(startup_log)!r}, 'a') as _log:\n    _log.write(f'{{os.getpid()}}\\n')",
        "STARTUP_RUNS = globals().get('STARTUP_RUNS', 0) + 1",
        PNG_CODE,
        "# GET /hello\nprint('hello world')",
        "# GET /startup\nprint(json.dumps({'pid': os.getpid(), 'runs': STARTUP_RUNS}))",
        "# GET /result\n{'answer': 42}",
        "# GET /silent\nx = 1",
        "# GET /stderr\nprint('to stderr', file=sys.stderr)\nprint('to stdout')",
        "# GET /stderr-only\nprint('only stderr', file=sys.stderr)",
        # REQUEST echoes, one per verb (PATCH is fastkg's extension).
        "# GET /echo\nprint(REQUEST)",
        "# POST /echo\nprint(REQUEST)",
        "# PUT /echo\nprint(REQUEST)",
        "# PATCH /echo\nprint(REQUEST)",
        "# DELETE /echo\nprint(REQUEST)",
        "# GET /users/:uid/posts/:pid\nprint(json.dumps(json.loads(REQUEST)['path']))",
        # Concatenation: both /concat cells run, in notebook order, with another endpoint between them.
        "# GET /concat\nprint('one')",
        "# GET /between\nprint('between')",
        "# GET /concat\nprint('two')",
        # ResponseInfo
        "# GET /created\nprint('made')",
        "# ResponseInfo GET /created\n"
        "headers = {'Content-Type': 'application/json', 'X-Made': 'yes'}\n"
        "print(json.dumps({'status': 201, 'headers': headers}))",
        "# GET /status\nprint('status from args')",
        "# ResponseInfo GET /status\n"
        "print(json.dumps({'status': int(json.loads(REQUEST)['args']['code'][0])}))",
        # Routing: the parameterised path comes first in the notebook, the fixed one still wins.
        "# GET /items/:id\nprint('item ' + json.loads(REQUEST)['path']['id'])",
        "# GET /items/new\nprint('new item form')",
        "# POST /things/new\nprint('made a thing')",
        # Matches any two-segment path, yet /_api/source and /public/ (registered first, as in KG) still work.
        "# GET /:first/:second\nprint('catch-all')",
        "# GET /things/:id\nprint('thing ' + json.loads(REQUEST)['path']['id'])",
        # Rich responses.
        "# GET /html\nfrom IPython.display import display, HTML\ndisplay(HTML('<b>x</b>'))",
        "# GET /png\nfrom IPython.display import display, Image\ndisplay(Image(data=PNG_BYTES))",
        "# GET /json-display\nfrom IPython.display import display, JSON\ndisplay(JSON({'k': [1, 2]}))",
        "# GET /printed-and-html\nfrom IPython.display import display, HTML\n"
        "display(HTML('<i>ignored</i>'))\nprint('stdout wins')",
        "# GET /html-override\nfrom IPython.display import display, HTML\ndisplay(HTML('<p>raw</p>'))",
        "# ResponseInfo GET /html-override\n"
        "print(json.dumps({'headers': {'Content-Type': 'text/x-custom'}}))",
        # Errors.
        "# GET /boom\nraise ValueError('boom')",
        "# GET /info-fails\nprint('body')",
        "# ResponseInfo GET /info-fails\nraise RuntimeError('no info')",
        "# GET /info-not-json\nprint('body')",
        "# ResponseInfo GET /info-not-json\nprint('status 201')",
    ]


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's notebook, its startup log and its static directory."""
    return tmp_path_factory.mktemp("semantics")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def api(root: Path) -> AsyncIterator[Gateway]:
    public = root / "public"
    public.mkdir()
    (public / "hello.txt").write_text("static hello\n")
    startup_log = root / "startup.log"
    notebook = write_notebook(root / "nb_semantics.ipynb", semantics_cells(startup_log))
    async with serve(
        api=["notebook-http"],
        seed_uri=str(notebook),
        prespawn_count=2,
        auth_token=TOKEN,
        allow_origin=ORIGIN,
        allow_notebook_download=True,
        static_path=str(public),
        request_timeout=20.0,
    ) as gw:
        yield gw


def request_of(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    value = json.loads(response.text)
    assert isinstance(value, dict)
    return value


# -- response bodies -------------------------------------------------------------------------------
async def test_get_returns_stdout_as_text_plain(api: Gateway) -> None:
    response = await api.client.get("/hello")
    assert response.status_code == 200
    assert response.text == "hello world\n"
    assert response.headers["content-type"].startswith("text/plain")


async def test_execute_result_only_returns_json_of_its_data(api: Gateway) -> None:
    response = await api.client.get("/result")
    assert response.status_code == 200
    assert response.json() == {"text/plain": "{'answer': 42}"}
    assert response.headers["content-type"].startswith("text/plain")


async def test_no_output_is_an_empty_body(api: Gateway) -> None:
    response = await api.client.get("/silent")
    assert response.status_code == 200
    assert response.content == b""


async def test_stderr_is_not_the_body(api: Gateway) -> None:
    mixed = await api.client.get("/stderr")
    assert mixed.text == "to stdout\n"
    only = await api.client.get("/stderr-only")
    assert only.status_code == 200
    assert only.content == b""


async def test_cells_with_the_same_verb_and_path_concatenate_in_order(api: Gateway) -> None:
    assert (await api.client.get("/concat")).text == "one\ntwo\n"
    assert (await api.client.get("/between")).text == "between\n"


async def test_response_info_sets_status_and_headers(api: Gateway) -> None:
    created = await api.client.get("/created")
    assert created.status_code == 201
    assert created.headers["content-type"] == "application/json"
    assert created.headers["x-made"] == "yes"
    assert created.text == "made\n"
    for code in (202, 418, 404):
        response = await api.client.get("/status", params={"code": str(code)})
        assert response.status_code == code
        assert response.text == "status from args\n"


async def test_startup_cells_ran_once_on_each_pool_kernel(api: Gateway, root: Path) -> None:
    seen = {}
    for _ in range(4):
        info = request_of(await api.client.get("/startup"))
        seen[info["pid"]] = info["runs"]
    assert len(seen) == 2, f"sequential requests should rotate over the 2 pool kernels: {seen}"
    assert set(seen.values()) == {1}, f"a startup cell ran more than once on a kernel: {seen}"
    logged = (root / "startup.log").read_text().split()
    assert sorted(int(pid) for pid in logged) == sorted(seen), "startup cells ran on other kernels too"


# -- REQUEST ---------------------------------------------------------------------------------------
async def test_path_parameters(api: Gateway) -> None:
    response = await api.client.get("/users/alice/posts/42")
    assert response.json() == {"uid": "alice", "pid": "42"}
    assert request_of(await api.client.get("/echo"))["path"] == {}


async def test_path_parameters_are_percent_decoded_after_matching(api: Gateway) -> None:
    """As in KG (Tornado matches the encoded path), `%2F` stays inside one parameter."""
    response = await api.client.get("/users/a%2Fb/posts/caf%C3%A9%20au%20lait")
    assert response.status_code == 200, response.text
    assert response.json() == {"uid": "a/b", "pid": "café au lait"}
    assert (await api.client.get("/users/a/b/posts/1")).status_code == 404


async def test_query_arguments_are_lists(api: Gateway) -> None:
    request = request_of(await api.client.get("/echo?a=1&a=2&b=x&empty="))
    assert request["args"] == {"a": ["1", "2"], "b": ["x"], "empty": [""]}
    assert request["body"] == ""


async def test_json_body_is_parsed(api: Gateway) -> None:
    payload = {"x": [1, 2], "y": {"z": None}, "s": 'naïve "quoted" $HOME #{x}'}
    request = request_of(await api.client.post("/echo", json=payload))
    assert request["body"] == payload
    assert request["headers"]["Content-Type"] == "application/json"


async def test_urlencoded_form_fields_are_lists(api: Gateway) -> None:
    request = request_of(await api.client.post("/echo", data={"a": ["1", "2"], "b": "x y"}))
    assert request["body"] == {"a": ["1", "2"], "b": ["x y"]}


async def test_multipart_form_fields_are_lists_without_files(api: Gateway) -> None:
    response = await api.client.post(
        "/echo", data={"a": ["1", "2"], "b": "x"}, files={"upload": ("f.txt", b"file content", "text/plain")}
    )
    request = request_of(response)
    assert request["body"] == {"a": ["1", "2"], "b": ["x"]}
    assert request["headers"]["Content-Type"].startswith("multipart/form-data; boundary=")


async def test_text_body_is_a_string(api: Gateway) -> None:
    request = request_of(
        await api.client.put("/echo", content="plain text\nline 2", headers={"Content-Type": "text/plain"})
    )
    assert request["body"] == "plain text\nline 2"


async def test_patch_and_delete_are_served(api: Gateway) -> None:
    patched = request_of(await api.client.patch("/echo", json={"op": "replace"}))
    assert patched["body"] == {"op": "replace"}
    deleted = request_of(await api.client.delete("/echo?id=3"))
    assert deleted["args"] == {"id": ["3"]}


async def test_headers_reach_the_cell_but_never_the_credentials(api: Gateway) -> None:
    # The shared client authenticates with `Authorization: token ...`.
    by_header = request_of(await api.client.get("/echo", headers={"X-Custom-Header": "abc"}))
    assert by_header["headers"]["X-Custom-Header"] == "abc"
    assert "Host" in by_header["headers"]
    assert "Authorization" not in by_header["headers"]
    # A bare client authenticating with `?token=`: the argument is dropped, other arguments stay.
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as bare:
        response = await bare.get("/echo", params={"token": TOKEN, "keep": "me"})
        by_query = request_of(response)
    assert by_query["args"] == {"keep": ["me"]}
    for seen in (by_header, by_query):
        text = json.dumps(seen)
        assert TOKEN not in text
        assert "authorization" not in text.lower()


# -- routing ---------------------------------------------------------------------------------------
async def test_known_path_with_another_verb_is_405_json(api: Gateway) -> None:
    response = await api.client.post("/hello", json={})
    assert response.status_code == 405
    assert response.headers["content-type"] == "application/json"
    assert response.json()["reason"] == "Method Not Allowed"
    assert "GET" in response.headers.get("allow", "")


async def test_head_is_not_an_endpoint_verb(api: Gateway) -> None:
    assert (await api.client.head("/hello")).status_code == 405


async def test_unknown_path_is_404_json(api: Gateway) -> None:
    response = await api.client.get("/no/such/endpoint")
    assert response.status_code == 404
    body = response.json()
    assert body["reason"] == "Not Found"
    assert "message" in body


async def test_trailing_slash_is_significant(api: Gateway) -> None:
    assert (await api.client.get("/hello")).status_code == 200
    response = await api.client.get("/hello/")
    assert response.status_code == 404
    assert response.json()["reason"] == "Not Found"


async def test_fixed_paths_match_before_parameterised_ones(api: Gateway) -> None:
    assert (await api.client.get("/items/new")).text == "new item form\n"
    assert (await api.client.get("/items/7")).text == "item 7\n"


async def test_first_matching_path_wins_even_for_another_verb(api: Gateway) -> None:
    """KG routes to the first matching path (fixed before parameterised) and only then checks the verb:
    `/things/new` serves only POST, so GET /things/new is 405, not the `/things/:id` cell."""
    response = await api.client.get("/things/new")
    assert response.status_code == 405, response.text
    assert (await api.client.post("/things/new")).text == "made a thing\n"
    assert (await api.client.get("/things/9")).text == "thing 9\n"


# -- KG's extra routes -----------------------------------------------------------------------------
async def test_two_segment_catch_all(api: Gateway) -> None:
    assert (await api.client.get("/any/thing")).text == "catch-all\n"
    assert (await api.client.post("/any/thing")).status_code == 405
    assert (await api.client.get("/any/thing/more")).status_code == 404


async def test_swagger_spec(api: Gateway) -> None:
    response = await api.client.get("/_api/spec/swagger.json")
    assert response.status_code == 200
    spec = response.json()
    assert spec["swagger"] == "2.0"
    assert spec["info"]["title"] == "nb_semantics"
    paths = spec["paths"]
    assert set(paths["/echo"]) == {"get", "post", "put", "patch", "delete"}
    assert "/users/:uid/posts/:pid" not in paths
    parameters = paths["/users/{uid}/posts/{pid}"]["get"]["parameters"]
    assert [(p["name"], p["in"], p["required"]) for p in parameters] == [
        ("uid", "path", True),
        ("pid", "path", True),
    ]
    assert {"/items/new", "/items/{id}", "/hello", "/concat"} <= set(paths)
    assert "/_api/spec/swagger.json" not in paths


async def test_source_download_returns_the_notebook(api: Gateway, root: Path) -> None:
    response = await api.client.get("/_api/source")
    assert response.status_code == 200
    assert response.content == (root / "nb_semantics.ipynb").read_bytes()
    notebook = nbformat.reads(response.text, as_version=4)  # type: ignore[no-untyped-call]
    assert notebook.cells[4].source == "# GET /hello\nprint('hello world')"


async def test_public_serves_static_files(api: Gateway) -> None:
    response = await api.client.get("/public/hello.txt")
    assert response.status_code == 200
    assert response.text == "static hello\n"
    assert (await api.client.get("/public/missing.txt")).status_code == 404


async def test_token_is_required_on_notebook_routes(api: Gateway) -> None:
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as bare:
        for path in ("/hello", "/_api/spec/swagger.json", "/_api/source", "/public/hello.txt"):
            response = await bare.get(path)
            assert response.status_code == 401, path
            assert response.json()["reason"] == "Unauthorized"
        wrong = await bare.get("/hello", headers={"Authorization": "token wrong"})
        assert wrong.status_code == 401
        assert (await bare.get("/hello", params={"token": TOKEN})).text == "hello world\n"


async def test_cors_headers_are_sent(api: Gateway) -> None:
    response = await api.client.get("/hello", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == ORIGIN
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as bare:
        refused = await bare.get("/hello", headers={"Origin": ORIGIN})
        preflight = await bare.options(
            "/echo", headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"}
        )
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == ORIGIN
    assert preflight.status_code < 300
    assert preflight.headers["access-control-allow-origin"] == ORIGIN


# -- rich responses (beyond KG) --------------------------------------------------------------------
async def test_displayed_html_is_a_text_html_body(api: Gateway) -> None:
    response = await api.client.get("/html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.text == "<b>x</b>"


async def test_displayed_png_is_an_image_body(api: Gateway) -> None:
    response = await api.client.get("/png")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/png"
    assert response.content == png_bytes()


async def test_displayed_json_is_a_json_body(api: Gateway) -> None:
    response = await api.client.get("/json-display")
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"k": [1, 2]}


async def test_stdout_wins_over_a_display(api: Gateway) -> None:
    response = await api.client.get("/printed-and-html")
    assert response.text == "stdout wins\n"
    assert response.headers["content-type"].startswith("text/plain")


async def test_response_info_overrides_a_rich_content_type(api: Gateway) -> None:
    response = await api.client.get("/html-override")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/x-custom"
    assert response.text == "<p>raw</p>"


# -- errors ----------------------------------------------------------------------------------------
async def test_cell_error_is_500_with_kg_text(api: Gateway) -> None:
    response = await api.client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text.strip() == "Error ValueError: boom"
    assert "Traceback" not in response.text


async def test_cell_error_as_json_without_traceback(api: Gateway) -> None:
    response = await api.client.get("/boom", headers={"Accept": "application/json"})
    assert response.status_code == 500
    detail = response.json()
    assert detail["ename"] == "ValueError"
    assert detail["evalue"] == "boom"
    assert "traceback" not in detail


async def test_failing_or_non_json_response_info_is_a_json_500(api: Gateway) -> None:
    for path, message in [
        ("/info-fails", "ResponseInfo cell failed: RuntimeError: no info"),
        ("/info-not-json", "ResponseInfo cell did not print JSON"),
    ]:
        response = await api.client.get(path)
        assert response.status_code == 500, path
        assert response.headers["content-type"] == "application/json"
        assert response.json() == {"reason": "Internal Server Error", "message": message}


async def test_kernel_still_serves_after_an_error(api: Gateway) -> None:
    for _ in range(2):  # both pool kernels
        assert (await api.client.get("/boom")).status_code == 500
    for _ in range(2):
        assert (await api.client.get("/hello")).text == "hello world\n"


# -- other configurations --------------------------------------------------------------------------
async def test_debug_errors_carry_a_traceback_and_source_is_off_by_default(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "nb_debug.ipynb",
        [
            "def fail():\n    raise ValueError('boom')",
            "# GET /boom\nfail()",
            "# GET /hello\nprint('hello')",
        ],
    )
    async with serve(api=["notebook-http"], seed_uri=str(notebook), debug=True, base_url="/gw") as gw:
        as_json = await gw.client.get("/boom", headers={"Accept": "application/json"})
        assert as_json.status_code == 500
        detail = as_json.json()
        assert (detail["ename"], detail["evalue"]) == ("ValueError", "boom")
        assert isinstance(detail["traceback"], list)
        assert "fail" in "\n".join(detail["traceback"])
        as_text = await gw.client.get("/boom")
        assert as_text.text.startswith("Error ValueError: boom\n")
        assert "fail" in as_text.text
        # KG_ALLOW_NOTEBOOK_DOWNLOAD is off by default; no static path, no /public/.
        assert (await gw.client.get("/_api/source")).status_code == 404
        assert (await gw.client.get("/public/x.txt")).status_code == 404
        # KG_BASE_URL prefixes the notebook's routes and its Swagger basePath.
        assert (await gw.client.get("/hello")).text == "hello\n"
        async with httpx.AsyncClient(base_url=gw.url.removesuffix("/gw"), timeout=30) as root:
            assert (await root.get("/hello")).status_code == 404
        spec = (await gw.client.get("/_api/spec/swagger.json")).json()
        assert spec["basePath"] == "/gw"
        assert spec["info"]["title"] == "nb_debug"


SWAGGER_DOC = {
    "swagger": "2.0",
    "info": {"title": "Greeter", "version": "1.2.3"},
    "paths": {
        "/greet/{name}": {
            "get": {
                "operationId": "greet",
                "summary": "Greet someone",
                "parameters": [{"name": "name", "in": "path", "required": True, "type": "string"}],
                "responses": {"200": {"description": "A greeting"}},
            }
        },
        "/greetings": {
            "post": {"operationId": "addGreeting", "responses": {"201": {"description": "Stored"}}},
        },
    },
}


async def test_swagger_cell_parser(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "nb_swagger.ipynb",
        [
            ("markdown", "# Greeter\n```json\n" + json.dumps(SWAGGER_DOC, indent=2) + "\n```\n"),
            "import json\nGREETING = 'hello'",
            "# operationId: greet\nreq = json.loads(REQUEST)\nprint(GREETING + ', ' + req['path']['name'])",
            "# operationId: addGreeting\nGREETING = json.loads(REQUEST)['body']['greeting']\nprint(GREETING)",
            "# ResponseInfo operationId: addGreeting\nprint(json.dumps({'status': 201}))",
            "# GET /ignored\nprint('annotations are not endpoints in swagger mode')",
        ],
    )
    async with serve(
        api=["notebook-http"],
        seed_uri=str(notebook),
        cell_parser="kernel_gateway.notebook_http.swagger.parser",
    ) as gw:
        greeted = await gw.client.get("/greet/ada")
        assert greeted.status_code == 200
        assert greeted.text == "hello, ada\n"
        added = await gw.client.post("/greetings", json={"greeting": "hi"})
        assert added.status_code == 201
        assert (await gw.client.get("/greet/bob")).text == "hi, bob\n"  # pool of one: same kernel
        assert (await gw.client.get("/ignored")).status_code == 404
        spec = (await gw.client.get("/_api/spec/swagger.json")).json()
        assert spec["info"]["title"] == "Greeter"
        assert spec["paths"]["/greet/{name}"]["get"]["summary"] == "Greet someone"
        assert spec["paths"]["/greetings"]["post"]["operationId"] == "addGreeting"
        openapi = (await gw.client.get("/openapi.json")).json()
        assert openapi["paths"]["/greet/{name}"]["get"]["operationId"] == "greet"


async def test_bash_notebook_gets_request_as_a_literal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """REQUEST in bash's form (a single-quoted assignment): quotes and `$(...)` arrive as data, never code."""
    spec_dir = tmp_path / "jupyter" / "kernels" / "nb_bash"
    spec_dir.mkdir(parents=True)
    argv = [sys.executable, "-m", "bash_kernel", "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(
        json.dumps({"argv": argv, "language": "bash", "display_name": "Bash"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    notebook = write_notebook(
        tmp_path / "nb_bash.ipynb",
        [
            "GREETING=hello",
            '# GET /greet\necho "$GREETING world"',
            '# POST /echo/:name\necho "$REQUEST"',
        ],
        kernel="nb_bash",
        language="bash",
    )
    marker = tmp_path / "injected"
    async with serve(api=["notebook-http"], seed_uri=str(notebook)) as gw:
        assert (await gw.client.get("/greet")).text == "hello world\n"
        payload = {"cmd": f"$(touch {marker})", "quote": 'it\'s `x` \\ "y"'}
        response = await gw.client.post("/echo/o'brien", json=payload)
        assert response.status_code == 200, response.text
        request = json.loads(response.text)
        assert request["body"] == payload
        assert request["path"] == {"name": "o'brien"}
    assert not marker.exists(), "request content was executed by bash"

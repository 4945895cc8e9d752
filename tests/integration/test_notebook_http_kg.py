"""notebook-http compared with Kernel Gateway 3.0.1 request by request, on real kernels.

`tests/notebooks/kg_compat.ipynb` exercises what KG's example and test notebooks rely on. Every expected
value below is what KG 3.0.1 (Tornado 6) answered to the same request on the same notebook: Tornado's
automatic Etag and 304, StaticFileHandler's content types, validators and ranges, the 400 for a path
parameter that is not UTF-8, JSON 405s, and a catch-all `/:name` endpoint that owns `/api`, `/docs` and
`/openapi.json` (KG serves nothing but the notebook in this mode).
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import nbformat
import pytest
import pytest_asyncio
from nbformat.v4 import new_code_cell, new_notebook

from tests.support import ROOT, Gateway, raw_http, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")

NOTEBOOK = ROOT / "tests" / "notebooks" / "kg_compat.ipynb"
INDEX_HTML = b"<!doctype html><p>public page</p>\n"


def sha1_etag(body: bytes) -> str:
    return f'"{hashlib.sha1(body).hexdigest()}"'


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def kg(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    public = tmp_path_factory.mktemp("public")
    (public / "index.html").write_bytes(INDEX_HTML)
    (public / "data.csv").write_text("a,b\n1,2\n")
    async with serve(
        api=["notebook-http"],
        seed_uri=str(NOTEBOOK),
        allow_notebook_download=True,
        static_path=str(public),
        debug=True,
    ) as gateway:
        yield gateway


async def test_the_notebook_owns_paths_fastkg_would_otherwise_serve(kg: Gateway) -> None:
    for name in ("api", "docs", "openapi.json", "livez", "readyz", "metrics", "admin"):
        response = await kg.client.get(f"/{name}")
        assert (response.status_code, response.text) == (200, f"claimed {name}\n"), name
        assert response.headers["content-type"] == "text/plain"
    # KG serves no kernel API in notebook-http mode, so /api/... is not fastkg's either.
    for path in ("/api/swagger.json", "/api/kernels"):
        response = await kg.client.get(path)
        assert response.status_code == 404, path
        assert response.json()["reason"] == "Not Found"
    # Paths the notebook leaves free keep fastkg's extras (the Swagger UI assets here).
    assert (await kg.client.get("/docs/static/swagger-ui.css")).status_code == 200


async def test_default_content_type_is_exactly_kgs(kg: Gateway) -> None:
    response = await kg.client.get("/hello")
    assert response.headers["content-type"] == "text/plain"
    assert response.text == "hello world\n"


async def test_get_200_carries_tornados_etag_and_if_none_match_gives_304(kg: Gateway) -> None:
    hello = await kg.client.get("/hello")
    etag = sha1_etag(b"hello world\n")
    assert hello.headers["etag"] == etag
    assert (await kg.client.get("/nothing")).headers["etag"] == sha1_etag(b"")
    for header in (etag, f'W/"other", {etag}', f"W/{etag}", "*"):
        cached = await kg.client.get("/hello", headers={"If-None-Match": header})
        assert cached.status_code == 304, header
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        assert "content-type" not in cached.headers
    stale = await kg.client.get("/hello", headers={"If-None-Match": '"something-else"'})
    assert (stale.status_code, stale.text) == (200, "hello world\n")
    spec = await kg.client.get("/_api/spec/swagger.json")
    assert spec.headers["etag"] == sha1_etag(spec.content)


async def test_etag_only_on_get_200_and_a_cell_chosen_etag_is_kept(kg: Gateway) -> None:
    assert "etag" not in (await kg.client.post("/form", data={"a": "1"})).headers
    assert "etag" not in (await kg.client.get("/fails")).headers  # 500
    empty = await kg.client.get("/empty")
    assert (empty.status_code, "etag" in empty.headers) == (204, False)
    tagged = await kg.client.get("/tagged")
    assert tagged.headers["etag"] == "cell-chosen-tag"
    assert tagged.headers["content-type"] == "application/json"
    # Tornado compares If-None-Match only against the Etag it computes itself.
    again = await kg.client.get("/tagged", headers={"If-None-Match": "*"})
    assert (again.status_code, again.json()) == (200, {"tagged": True})


async def test_public_files_are_served_as_tornado_serves_them(kg: Gateway) -> None:
    page = await kg.client.get("/public/index.html")
    assert page.content == INDEX_HTML
    assert page.headers["content-type"] == "text/html"
    assert page.headers["etag"] == f'"{hashlib.sha512(INDEX_HTML).hexdigest()}"'
    assert page.headers["accept-ranges"] == "bytes"
    assert "last-modified" in page.headers
    assert (await kg.client.get("/public/data.csv")).headers["content-type"] == "text/csv"
    cached = await kg.client.get("/public/index.html", headers={"If-None-Match": page.headers["etag"]})
    assert (cached.status_code, cached.content) == (304, b"")
    since = await kg.client.get(
        "/public/index.html", headers={"If-Modified-Since": page.headers["last-modified"]}
    )
    assert since.status_code == 304
    head = await kg.client.head("/public/index.html")
    assert (head.status_code, head.content, head.headers["content-length"]) == (
        200,
        b"",
        str(len(INDEX_HTML)),
    )
    assert (await kg.client.get("/public/missing.txt")).status_code == 404
    refused = await kg.client.post("/public/index.html")
    assert (refused.status_code, refused.json()["reason"]) == (405, "Method Not Allowed")


async def test_notebook_source_has_kgs_content_type_and_byte_ranges(kg: Gateway) -> None:
    raw = NOTEBOOK.read_bytes()
    expected_type = mimetypes.guess_type(NOTEBOOK.name)[0] or "application/octet-stream"
    whole = await kg.client.get("/_api/source")
    assert (whole.status_code, whole.content) == (200, raw)
    assert whole.headers["content-type"] == expected_type
    assert whole.headers["accept-ranges"] == "bytes"
    first = await kg.client.get("/_api/source", headers={"Range": "bytes=0-9"})
    assert (first.status_code, first.content) == (206, raw[:10])
    assert first.headers["content-range"] == f"bytes 0-9/{len(raw)}"
    assert first.headers["etag"] == whole.headers["etag"]
    tail = await kg.client.get("/_api/source", headers={"Range": "bytes=-5"})
    assert (tail.status_code, tail.content) == (206, raw[-5:])
    beyond = await kg.client.get("/_api/source", headers={"Range": f"bytes={len(raw)}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{len(raw)}"
    everything = await kg.client.get("/_api/source", headers={"Range": "bytes=0-"})
    assert (everything.status_code, everything.content) == (200, raw)
    cached = await kg.client.get("/_api/source", headers={"If-None-Match": whole.headers["etag"]})
    assert cached.status_code == 304


async def test_path_parameter_that_is_not_utf8_is_kgs_400(kg: Gateway) -> None:
    bad = await kg.client.get("/items/%FF")
    assert bad.status_code == 400
    assert bad.json() == {"reason": "Bad Request", "message": "Invalid unicode in id: b'\\xff'"}
    good = await kg.client.get("/items/%E2%98%83")
    assert (good.status_code, good.text) == (200, "\u2603\n")


async def test_unknown_and_unserved_methods_are_json_405s(kg: Gateway) -> None:
    for method in ("PROPFIND", "HEAD", "PUT"):
        response = await kg.client.request(method, "/hello")
        assert response.status_code == 405, method
        assert response.headers["allow"] == "GET"
        if method != "HEAD":
            assert response.json()["reason"] == "Method Not Allowed"
    # A method no HTTP library knows reaches the gateway (uvicorn's default parser refuses it with a 400).
    foo = b"FOO /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, headers, body = await raw_http(kg.url, foo)
    assert (status, headers["content-type"]) == (405, "application/json")
    assert json.loads(body)["reason"] == "Method Not Allowed"
    # Off the notebook's paths it is the usual 404 (KG: 405, a documented difference).
    status, _, _ = await raw_http(kg.url, foo.replace(b"/hello", b"/not/a/path"))
    assert status == 404


async def test_raw_utf8_in_the_request_target_is_accepted(kg: Gateway) -> None:
    query = "GET /args?q=\u2603&r=caf\u00e9 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    status, _, body = await raw_http(kg.url, query)
    assert (status, json.loads(body)) == (200, {"q": ["\u2603"], "r": ["caf\u00e9"]})
    path = "GET /items/\u2603 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    status, _, body = await raw_http(kg.url, path)
    assert (status, body.decode()) == (200, "\u2603\n")


async def test_traceback_line_numbers_are_the_cells_own(kg: Gateway) -> None:
    response = await kg.client.get("/fails", headers={"Accept": "application/json"})
    assert response.status_code == 500
    detail = response.json()
    assert detail["message"] == "Error ValueError: raised on line three"
    traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(detail["traceback"]))
    assert re.findall(r"line (\d+)", traceback) == ["3"], traceback
    text = (await kg.client.get("/fails")).text
    assert text.startswith("Error ValueError: raised on line three")


async def test_form_with_a_charset_parameter_is_parsed_as_a_form(kg: Gateway) -> None:
    response = await kg.client.post(
        "/form",
        content=b"a=1&a=2&b=caf%C3%A9",
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert response.json() == {"a": ["1", "2"], "b": ["caf\u00e9"]}


async def test_a_notebook_path_under_the_token_free_docs_assets_still_needs_the_token(
    tmp_path: Path,
) -> None:
    notebook = new_notebook()
    notebook.metadata = {"kernelspec": {"name": "python3", "language": "python"}}
    notebook.cells = [new_code_cell("# GET /docs/static/:asset\nprint('notebook code')")]
    nbformat.write(notebook, str(tmp_path / "assets.ipynb"))
    token = "assets-token-0123456789"
    async with serve(api=["notebook-http"], seed_uri=str(tmp_path / "assets.ipynb"), auth_token=token) as gw:
        async with httpx.AsyncClient(base_url=gw.url) as anonymous:
            refused = await anonymous.get("/docs/static/swagger-ui.css")
            assert refused.status_code == 401
            assert refused.json()["reason"] == "Unauthorized"
            # The assets the notebook leaves alone stay token-free for Swagger UI's <script> tags.
            assert (await anonymous.get("/docs/static/swagger-ui-bundle.js/x")).status_code == 404
        served = await gw.client.get("/docs/static/swagger-ui.css")
        assert (served.status_code, served.text) == (200, "notebook code\n")


async def test_a_notebook_path_over_the_token_free_probes_still_needs_the_token(tmp_path: Path) -> None:
    notebook = new_notebook()
    notebook.metadata = {"kernelspec": {"name": "python3", "language": "python"}}
    notebook.cells = [new_code_cell("# GET /:name\nprint('notebook code')")]
    nbformat.write(notebook, str(tmp_path / "catch_all.ipynb"))
    token = "probes-token-0123456789"
    settings = {"metrics_public": True, "admin": "on"}
    async with (
        serve(
            api=["notebook-http"], seed_uri=str(tmp_path / "catch_all.ipynb"), auth_token=token, **settings
        ) as gw,
        httpx.AsyncClient(base_url=gw.url) as anonymous,
    ):
        for path in ("/livez", "/readyz", "/metrics", "/admin"):
            refused = await anonymous.get(path)
            assert refused.status_code == 401, path
            assert refused.json()["reason"] == "Unauthorized"
            served = await gw.client.get(path)
            assert (served.status_code, served.text) == (200, "notebook code\n"), path

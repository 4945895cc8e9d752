"""Token auth on every route (REST, spec, docs, resources, websocket), CORS and origin checks, Swagger."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
import yaml
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import TOKEN
from tests.integration.test_kernels_rest import assert_clean, assert_error
from tests.integration.test_kernelspecs import raw_get
from tests.support import Gateway, serve

ORIGIN = "https://app.example"
CORS = {
    "allow_origin": ORIGIN,
    "allow_credentials": "true",
    "allow_headers": "Authorization,Content-Type",
    "allow_methods": "GET,POST,DELETE,PATCH",
    "expose_headers": "Location",
    "max_age": "600",
}
CORS_HEADERS = {
    "access-control-allow-origin": ORIGIN,
    "access-control-allow-credentials": "true",
    "access-control-allow-headers": "Authorization,Content-Type",
    "access-control-allow-methods": "GET,POST,DELETE,PATCH",
    "access-control-expose-headers": "Location",
    "access-control-max-age": "600",
}

PROTECTED = [
    ("GET", "/api"),
    ("GET", "/api/kernels"),
    ("POST", "/api/kernels"),
    ("GET", f"/api/kernels/{uuid.uuid4()}"),
    ("DELETE", f"/api/kernels/{uuid.uuid4()}"),
    ("POST", f"/api/kernels/{uuid.uuid4()}/interrupt"),
    ("POST", f"/api/kernels/{uuid.uuid4()}/restart"),
    ("GET", "/api/kernelspecs"),
    ("GET", "/api/kernelspecs/python3"),
    ("GET", "/kernelspecs/python3/logo-64x64.png"),
    ("GET", "/api/sessions"),
    ("POST", "/api/sessions"),
    ("GET", f"/api/sessions/{uuid.uuid4()}"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/api/kernels/x/channels"),
    ("GET", "/no/such/route"),
    ("GET", "/api/contents"),
]


@pytest.fixture
async def cors_gateway() -> AsyncIterator[Gateway]:
    async with serve(auth_token=TOKEN, list_kernels=True, **CORS) as gw:
        yield gw


def bare(gw: Gateway, **kwargs: object) -> httpx.AsyncClient:
    """A client that carries no token."""
    return httpx.AsyncClient(base_url=gw.url, timeout=30, **kwargs)  # type: ignore[arg-type]


def assert_no_token(response: httpx.Response) -> None:
    assert TOKEN not in response.text
    assert TOKEN not in str(response.headers)


async def test_every_route_needs_the_token(gateway: Gateway) -> None:
    async with bare(gateway) as client:
        for method, path in PROTECTED:
            response = await client.request(method, path)
            body = assert_error(response, 401)
            assert body["reason"] == "Unauthorized", path
            response = await client.request(method, path, headers={"Authorization": "token wrong-token"})
            assert_error(response, 401)
            response = await client.request(method, path, params={"token": "wrong-token"})
            assert_error(response, 401)
            response = await client.request(method, path, headers={"Authorization": f"token {TOKEN}x"})
            assert_error(response, 401)
            assert "wrong-token" not in response.text


async def test_kgs_swagger_documents_need_no_token(gateway: Gateway) -> None:
    """KG serves its Swagger documents of the kernel API to anyone: they describe routes, hold no data."""
    async with bare(gateway) as client:
        for path in ("/api/swagger.json", "/api/swagger.yaml"):
            response = await client.get(path)
            assert response.status_code == 200, path
            assert "swagger" in response.text
            assert_no_token(response)


async def test_token_by_header_or_query(gateway: Gateway) -> None:
    async with bare(gateway) as client:
        for kwargs in (
            {"headers": {"Authorization": f"token {TOKEN}"}},
            {"headers": {"Authorization": f"Token {TOKEN}"}},
            {"params": {"token": TOKEN}},
        ):
            for path in (
                "/api",
                "/api/kernelspecs",
                "/api/swagger.json",
                "/kernelspecs/python3/logo-64x64.png",
            ):
                response = await client.get(path, **kwargs)  # type: ignore[arg-type]
                assert response.status_code == 200, (path, kwargs)
                assert_no_token(response)
        # with the token, unknown routes are the usual JSON 404
        assert_error(await client.get("/no/such/route", params={"token": TOKEN}), 404)
        # a token in the wrong scheme does not count
        assert_error(await client.get("/api", headers={"Authorization": f"Basic {TOKEN}"}), 401)


async def test_websocket_needs_the_token(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    ws_base = gateway.url.replace("http", "ws", 1) + f"/api/kernels/{kernel_id}/channels"
    for url, headers in [
        (f"{ws_base}?session_id=a", None),
        (f"{ws_base}?session_id=a&token=wrong", None),
        (f"{ws_base}?session_id=a", {"Authorization": "token wrong"}),
        (gateway.url.replace("http", "ws", 1) + f"/api/kernels/{uuid.uuid4()}/channels", None),
    ]:
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, additional_headers=headers, open_timeout=10)
        assert refused.value.response.status_code == 401, url
        assert TOKEN not in (refused.value.response.body or b"").decode()
    # the right token, either way, is accepted
    for url, headers in [
        (f"{ws_base}?session_id=b&token={TOKEN}", None),
        (f"{ws_base}?session_id=c", {"Authorization": f"token {TOKEN}"}),
    ]:
        ws = await connect(url, additional_headers=headers, open_timeout=10)
        await ws.close()
    # ... and the socket really works
    sock = await gateway.connect(kernel_id)
    reply, _ = await sock.execute("1")
    assert reply["status"] == "ok"
    await sock.close()


async def test_cors_headers_on_every_response(cors_gateway: Gateway) -> None:
    gw = cors_gateway
    responses: list[httpx.Response] = []
    async with bare(gw) as client:
        responses.append(await client.get("/api"))  # 401
        responses.append(await client.get("/no/such/route"))  # 401 for unknown routes too
        responses.append(await client.get("/api", headers={"Origin": ORIGIN}))  # 401 cross-origin
    responses.append(await gw.client.get("/api"))  # 200
    responses.append(await gw.client.get("/api", headers={"Origin": ORIGIN}))  # 200 cross-origin allowed
    responses.append(await gw.client.get("/no/such/route"))  # 404
    responses.append(await gw.client.get("/api/kernels"))  # 200 list
    responses.append(await gw.client.get("/kernelspecs/python3/logo-64x64.png"))  # file
    responses.append(await gw.client.get("/docs/static/swagger-ui.css"))  # static
    responses.append(
        await gw.client.post(
            "/api/kernels", content=b"x" * (2 << 20), headers={"content-type": "application/json"}
        )
    )  # 413
    responses.append(
        await gw.client.post("/api/kernels", content=b"{", headers={"content-type": "application/json"})
    )  # 400
    assert [r.status_code for r in responses] == [401, 401, 401, 200, 200, 404, 200, 200, 200, 413, 400]
    for response in responses:
        for name, value in CORS_HEADERS.items():
            assert response.headers.get(name) == value, (response.request.url, name)
        assert_no_token(response)


async def test_preflight_needs_no_token(cors_gateway: Gateway) -> None:
    async with bare(cors_gateway) as client:
        for path in ("/api/kernels", f"/api/kernels/{uuid.uuid4()}", "/api/sessions", "/anything"):
            response = await client.options(
                path,
                headers={
                    "Origin": ORIGIN,
                    "Access-Control-Request-Method": "POST",
                    "Access-Control-Request-Headers": "authorization,content-type",
                },
            )
            assert response.status_code == 200, path  # KG's handlers finish() a preflight: 200
            assert response.content == b""
            for name, value in CORS_HEADERS.items():
                assert response.headers.get(name) == value
            assert_no_token(response)


async def test_foreign_origin_is_refused(cors_gateway: Gateway) -> None:
    gw = cors_gateway
    for origin in (
        "https://evil.example",
        "https://app.example.evil.example",
        "http://app.example",
        "https://app.example:8443",
        "null",
    ):
        response = await gw.client.get("/api", headers={"Origin": origin})
        assert_error(response, 404)  # KG's answer (Jupyter Server's check_origin); websockets get 403
        assert response.json()["message"] == "Cross-origin request refused"
        assert response.headers.get("access-control-allow-origin") == ORIGIN
        response = await gw.client.post("/api/kernels", json={}, headers={"Origin": origin})
        assert_error(response, 404)
    # same-origin requests pass though not listed, and so do requests without an Origin
    same = await gw.client.get("/api", headers={"Origin": gw.url.split("/api")[0]})
    assert same.status_code == 200
    assert (await gw.client.get("/api")).status_code == 200
    assert (await gw.client.get("/api/kernels")).json() == []  # nothing started by refused POSTs


async def test_foreign_origin_websocket_is_refused(cors_gateway: Gateway) -> None:
    gw = cors_gateway
    kernel_id = await gw.start_kernel()
    url = gw.ws_url(kernel_id)
    with pytest.raises(InvalidStatus) as refused:
        await connect(url, origin="https://evil.example", open_timeout=10)  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    # the allowed origin and the same origin connect
    for origin in (ORIGIN, gw.url):
        ws = await connect(url, origin=origin, open_timeout=10)  # type: ignore[arg-type]
        await ws.close()


async def ws_status(url: str, origin: str) -> int:
    """The status a websocket upgrade gets (101 when accepted)."""
    try:
        ws = await connect(url, origin=origin, open_timeout=10)  # type: ignore[arg-type]
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def test_origin_check_without_cors_configuration() -> None:
    async with serve(list_kernels=True) as gw:
        response = await gw.client.get("/api", headers={"Origin": "https://evil.example"})
        assert_error(response, 404)
        assert "access-control-allow-origin" not in response.headers
        ok = await gw.client.get("/api")
        assert ok.status_code == 200
        assert not any(name.startswith("access-control-") for name in ok.headers)
        # the origin check comes before the kernel lookup: 403 for a foreign origin, 404 (no such
        # kernel) once past it
        url = gw.ws_url(str(uuid.uuid4()))
        assert await ws_status(url, "https://evil.example") == 403
        assert await ws_status(url, gw.url) == 404


async def test_star_allows_every_origin() -> None:
    async with serve(allow_origin="*", list_kernels=True) as gw:
        response = await gw.client.get("/api", headers={"Origin": "https://anyone.example"})
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "*"
        assert await ws_status(gw.ws_url(str(uuid.uuid4())), "https://anyone.example") == 404


# -- Swagger / OpenAPI -------------------------------------------------------------------------------

KERNEL_PATHS = {
    "/api",
    "/api/kernels",
    "/api/kernels/{kernel_id}",
    "/api/kernels/{kernel_id}/interrupt",
    "/api/kernels/{kernel_id}/restart",
    "/api/kernelspecs",
    "/api/kernelspecs/{name}",
    "/api/sessions",
    "/api/sessions/{session_id}",
}


async def test_swagger_documents(gateway: Gateway) -> None:
    """OpenAPI 3 at /openapi.json; KG's paths carry the kernel API in Swagger 2.0 (test_kg_answers)."""
    openapi = await gateway.client.get("/openapi.json")
    assert openapi.status_code == 200
    document = openapi.json()
    assert set(document["paths"]) >= KERNEL_PATHS
    assert {"get", "post"} <= set(document["paths"]["/api/kernels"])

    as_json = await gateway.client.get("/api/swagger.json")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"].startswith("application/json")
    assert set(as_json.json()["paths"]) >= KERNEL_PATHS

    as_yaml = await gateway.client.get("/api/swagger.yaml")
    assert as_yaml.status_code == 200
    assert "yaml" in as_yaml.headers["content-type"]
    assert yaml.safe_load(as_yaml.text) == as_json.json()
    for response in (openapi, as_json, as_yaml):
        assert_no_token(response)
        assert "Traceback" not in response.text


async def test_swagger_ui_uses_local_assets(gateway: Gateway) -> None:
    page = await gateway.client.get("/docs", params={"token": TOKEN})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "cdn.jsdelivr" not in html
    assert "unpkg.com" not in html
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html)
    assert "/docs/static/swagger-ui-bundle.js" in assets
    assert "/docs/static/swagger-ui.css" in assets
    assert all(a.startswith("/docs/") for a in assets), assets
    assert "/openapi.json" in html
    assert_no_token(page)
    assert_clean(page)
    # a browser loads the assets from tags that cannot carry the token: they are public, hold no data
    async with bare(gateway) as browser:
        for asset in assets:
            response = await browser.get(asset)
            assert response.status_code == 200, asset
            assert response.content
        bundle = await browser.get("/docs/static/swagger-ui-bundle.js")
        assert "javascript" in bundle.headers["content-type"]
        assert len(bundle.content) > 100_000
        # ... but the page and the document it describes are not
        assert_error(await browser.get("/docs"), 401)
        assert_error(await browser.get("/openapi.json"), 401)


async def test_public_asset_prefixes_do_not_bypass_auth(gateway: Gateway) -> None:
    await gateway.start_kernel()
    for path in (
        "/docs/static/../../api/kernels",
        "/docs/static/%2e%2e/%2e%2e/api/kernels",
        "/docs/app/../../api/kernels",
        "/docs/app/..%2f..%2fapi%2fkernels",
        "/docs/static/../../openapi.json",
        "/docs/static/../../../../../../etc/passwd",
    ):
        status, body = await raw_get(gateway, path, token=False)
        assert status in (401, 404), (path, status)
        assert b'"execution_state"' not in body, path
        assert b'"paths"' not in body, path
        assert b"root:" not in body, path

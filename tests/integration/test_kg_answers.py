"""Kernel Gateway 3.0.1's exact answers on the kernel API's REST edge, as a client sees them over HTTP.

Each test cites the KG / Jupyter Server code it matches: kernel_gateway/services/sessions/handlers.py
(SessionRootHandler.get), jupyter_server/services/sessions/handlers.py (SessionRootHandler.post),
kernel_gateway/mixins.py (TokenAuthorizationMixin.prepare, CORSMixin.options),
kernel_gateway/services/kernels/handlers.py (MainKernelHandler.post).
"""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.validation import OpenAPIV2SpecValidator
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.conftest import TOKEN
from tests.integration.test_kernels_rest import assert_error
from tests.integration.test_security import KERNEL_PATHS, bare, ws_status
from tests.support import Gateway, serve

FORBIDDEN = {"reason": "Forbidden", "message": "Forbidden"}


async def test_listing_off_forbids_sessions_and_kernels_lists() -> None:
    """With KG_LIST_KERNELS off a kernel id is known only to its creator: a session list would leak it."""
    async with serve() as gw:
        kernel_id = await gw.start_kernel()
        created = await gw.client.post(
            "/api/sessions", json={"path": "a.ipynb", "type": "notebook", "kernel": {"id": kernel_id}}
        )
        assert created.status_code == 201, created.text
        for path in ("/api/sessions", "/api/kernels"):
            response = await gw.client.get(path)
            assert assert_error(response, 403) == FORBIDDEN
            assert kernel_id not in response.text
        # the creator still reaches its own session and kernel by id
        session = (await gw.client.get(f"/api/sessions/{created.json()['id']}")).json()
        assert session["kernel"]["id"] == kernel_id


async def test_session_bodies_jupyter_server_refuses(gateway: Gateway) -> None:
    client = gateway.client
    for content, message in [
        (b"", "No JSON data provided"),
        (b"{}", "Missing field in JSON data: path"),
        (b'{"type": "notebook", "kernel": {"name": "python3"}}', "Missing field in JSON data: path"),
        (b'{"path": "a.ipynb"}', "Missing field in JSON data: type"),
        (
            b'{"path": "a.ipynb", "name": "a", "kernel": {"name": "python3"}}',
            "Missing field in JSON data: type",
        ),
    ]:
        response = await client.post("/api/sessions", content=content)
        assert assert_error(response, 400) == {"reason": "Bad Request", "message": message}, content
    assert (await client.get("/api/sessions")).json() == []
    assert (await client.get("/api/kernels")).json() == []  # no kernel was started for any of them
    unknown = str(uuid.uuid4())
    response = await client.patch(f"/api/sessions/{unknown}", content=b"")
    assert assert_error(response, 400) == {"reason": "Bad Request", "message": "No JSON data provided"}


async def test_legacy_notebook_field_makes_a_notebook_session(gateway: Gateway) -> None:
    """Jupyter Server still reads the pre-4.0 `{"notebook": {"path"}}` body as type notebook."""
    response = await gateway.client.post("/api/sessions", json={"notebook": {"path": "old.ipynb"}})
    assert response.status_code == 201, response.text
    assert (response.json()["path"], response.json()["type"]) == ("old.ipynb", "notebook")
    assert response.headers["location"] == f"/api/sessions/{response.json()['id']}"


async def test_query_token_wins_over_the_header(gateway: Gateway) -> None:
    """KG reads `?token=` first and, when present, it alone decides (even when empty)."""
    async with bare(gateway) as client:
        stale = {"Authorization": "token stale-token"}
        right = {"Authorization": f"token {TOKEN}"}
        assert (await client.get("/api", params={"token": TOKEN}, headers=stale)).status_code == 200
        for params in ({"token": "wrong"}, {"token": ""}):
            response = await client.get("/api", params=params, headers=right)
            assert assert_error(response, 401)["reason"] == "Unauthorized", params
        # the last of repeated arguments counts, as tornado's get_argument returns it
        repeated = await client.get(f"/api?token=wrong&token={TOKEN}")
        assert repeated.status_code == 200
    # the same order on the websocket upgrade
    kernel_id = await gateway.start_kernel()
    base = gateway.ws_url(kernel_id, token=False)
    ws = await connect(f"{base}&token={TOKEN}", additional_headers=stale, open_timeout=30)
    await ws.close()
    with pytest.raises(InvalidStatus) as refused:
        await connect(f"{base}&token=wrong", additional_headers=right, open_timeout=30)
    assert refused.value.response.status_code == 401


NO_ENVIRONMENT = "env names may not contain '=' or NUL, nor values NUL"


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        ({"env": "KERNEL_A=1"}, "body.env: Value error, env must be an object"),
        ({"env": None}, "body.env: Value error, env must be an object"),
        ({"env": ["KERNEL_A"]}, "body.env: Value error, env must be an object"),
        ({"env": 5}, "body.env: Value error, env must be an object"),
        ({"env": {"KERNEL_A": 1}}, "body.env.KERNEL_A: Input should be a valid string"),
        ({"env": {"KERNEL_A": {"nested": "x"}}}, "body.env.KERNEL_A: Input should be a valid string"),
        # no process environment holds these: they were 500s after three failed starts
        ({"env": {"KERNEL_A=B": "x"}}, f"body.env: Value error, {NO_ENVIRONMENT}"),
        ({"env": {"KERNEL_A": "x\x00y"}}, f"body.env: Value error, {NO_ENVIRONMENT}"),
    ],
)
async def test_env_must_be_an_object_of_strings(gateway: Gateway, body: object, detail: str) -> None:
    """KG: `if not isinstance(model["env"], dict): raise HTTPError(400)`; never the 422 of a validator."""
    response = await gateway.client.post("/api/kernels", content=json.dumps(body).encode())
    assert assert_error(response, 400) == {"reason": "Bad Request", "message": f"Invalid request: {detail}"}
    assert (await gateway.client.get("/api/kernels")).json() == []


async def test_preflight_is_200_without_a_token_on_any_configuration(gateway: Gateway) -> None:
    async with bare(gateway) as client:
        for path in ("/api/kernels", f"/api/kernels/{uuid.uuid4()}", "/api/sessions", "/api"):
            response = await client.options(path, headers={"Access-Control-Request-Method": "POST"})
            assert response.status_code == 200, path
            assert response.content == b""
            assert response.headers["content-length"] == "0"


async def test_405_allow_lists_every_method_of_the_path(gateway: Gateway) -> None:
    some_id = str(uuid.uuid4())
    expected = {
        "/api": "GET, OPTIONS",
        "/api/kernels": "GET, POST, OPTIONS",
        f"/api/kernels/{some_id}": "GET, DELETE, OPTIONS",
        f"/api/kernels/{some_id}/interrupt": "POST, OPTIONS",
        f"/api/kernels/{some_id}/restart": "POST, OPTIONS",
        "/api/kernelspecs": "GET, OPTIONS",
        "/api/sessions": "GET, POST, OPTIONS",
        f"/api/sessions/{some_id}": "GET, PATCH, DELETE, OPTIONS",
    }
    for path, allow in expected.items():
        response = await gateway.client.put(path, content=b"{}")
        assert assert_error(response, 405)["reason"] == "Method Not Allowed", path
        assert response.headers["allow"] == allow, path
        # every method it names is really answered (a 404 for the unknown id, not a 405)
        for method in allow.split(", "):
            answered = await gateway.client.request(method, path, content=b"{}" if method != "GET" else None)
            assert answered.status_code != 405, (method, path)
    started = [k["id"] for k in (await gateway.client.get("/api/kernels")).json()]
    for kernel_id in started:  # the POST probe of /api/kernels started one
        assert (await gateway.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204


async def test_several_allowed_origins_echo_the_one_that_matched() -> None:
    origins = ("https://a.example", "https://b.example")
    async with serve(allow_origin=",".join(origins), allow_headers="Authorization") as gw:
        for origin in origins:
            response = await gw.client.get("/api", headers={"Origin": origin})
            assert response.status_code == 200
            assert response.headers["access-control-allow-origin"] == origin
            assert response.headers["vary"] == "Origin"
            preflight = await gw.client.options(
                "/api/kernels",
                headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
            )
            assert preflight.status_code == 200
            assert preflight.headers["access-control-allow-origin"] == origin
            assert preflight.headers["access-control-allow-headers"] == "Authorization"
            assert await ws_status(gw.ws_url(str(uuid.uuid4())), origin) == 404  # past the origin check
        refused = await gw.client.get("/api", headers={"Origin": "https://c.example"})
        assert_error(refused, 404)
        assert "access-control-allow-origin" not in refused.headers
        assert refused.headers["vary"] == "Origin"
        plain = await gw.client.get("/api")
        assert "access-control-allow-origin" not in plain.headers
        assert plain.headers["vary"] == "Origin"


async def test_one_allowed_origin_is_sent_as_configured() -> None:
    """KG's CORSMixin sends the KG_ALLOW_ORIGIN value as it is on every response."""
    async with serve(allow_origin="https://a.example") as gw:
        for headers in ({}, {"Origin": "https://a.example"}):
            response = await gw.client.get("/api", headers=headers)
            assert response.headers["access-control-allow-origin"] == "https://a.example"
            assert "vary" not in response.headers


async def test_same_origin_behind_a_trusted_proxy_uses_forwarded_host_and_proto() -> None:
    proxied = {"X-Forwarded-Host": "gateway.example", "X-Forwarded-Proto": "https"}
    async with serve(trust_xheaders=True) as gw:
        same = await gw.client.get("/api", headers={"Origin": "https://gateway.example", **proxied})
        assert same.status_code == 200, same.text
        # the first entry of a proxy chain is the one the browser saw
        chained = {"X-Forwarded-Host": "gateway.example, inner:8888", "X-Forwarded-Proto": "https, http"}
        assert (
            await gw.client.get("/api", headers={"Origin": "https://gateway.example", **chained})
        ).status_code == 200
        for origin in ("http://gateway.example", "https://other.example", gw.url):
            response = await gw.client.get("/api", headers={"Origin": origin, **proxied})
            assert_error(response, 404)
        url = gw.ws_url(str(uuid.uuid4()))
        async with asyncio.timeout(30):
            ws_same = await ws_upgrade_status(url, "https://gateway.example", proxied)
            ws_other = await ws_upgrade_status(url, "https://other.example", proxied)
        assert (ws_same, ws_other) == (404, 403)
    async with serve() as gw:  # untrusted: the forwarded headers are ignored
        response = await gw.client.get("/api", headers={"Origin": "https://gateway.example", **proxied})
        assert_error(response, 404)
        assert (await gw.client.get("/api", headers={"Origin": gw.url, **proxied})).status_code == 200


async def ws_upgrade_status(url: str, origin: str, headers: dict[str, str]) -> int:
    try:
        ws = await connect(url, origin=origin, additional_headers=headers, open_timeout=10)  # type: ignore[arg-type]
    except InvalidStatus as exc:
        return exc.response.status_code
    await ws.close()
    return 101


async def test_kg_swagger_paths_serve_a_valid_swagger_2_document(gateway: Gateway) -> None:
    as_json = await gateway.client.get("/api/swagger.json")
    assert as_json.status_code == 200
    assert as_json.headers["content-type"] == "application/json"
    document = as_json.json()
    assert document["swagger"] == "2.0"
    validate(document, cls=OpenAPIV2SpecValidator)
    assert set(document["paths"]) >= {*KERNEL_PATHS, "/api/kernels/{kernel_id}/channels"}
    assert set(document["paths"]["/api/kernels"]) == {"get", "post"}
    assert set(document["paths"]["/api/kernels/{kernel_id}"]) == {"get", "delete"}
    assert set(document["paths"]["/api/sessions/{session_id}"]) == {"get", "patch", "delete"}
    channels = document["paths"]["/api/kernels/{kernel_id}/channels"]["get"]
    assert channels["tags"] == ["channels"]
    assert "101" in channels["responses"]
    start = document["paths"]["/api/kernels"]["post"]
    assert start["parameters"][0]["in"] == "body"
    assert start["parameters"][0]["schema"]["$ref"] == "#/definitions/StartKernelRequest"
    assert start["responses"]["201"]["schema"] == {"$ref": "#/definitions/KernelModel"}
    assert "422" not in json.dumps(document)  # errors are 400s, never a validator's 422
    kernel = document["definitions"]["KernelModel"]
    assert set(kernel["properties"]) == {"id", "name", "last_activity", "execution_state", "connections"}
    assert {"tokenHeader", "tokenParam"} == set(document["securityDefinitions"])

    as_yaml = await gateway.client.get("/api/swagger.yaml")
    assert as_yaml.status_code == 200
    assert as_yaml.headers["content-type"].startswith("text/x-yaml")  # KG's APIYamlHandler type
    assert yaml.safe_load(as_yaml.text) == document

    openapi = (await gateway.client.get("/openapi.json")).json()
    assert openapi["openapi"].startswith("3.")
    assert "swagger" not in openapi
    validate(openapi)
    # the OpenAPI 3 document, too, promises the 400 the gateway sends rather than FastAPI's 422
    assert "422" not in json.dumps(openapi)
    bad = openapi["paths"]["/api/kernels"]["post"]["responses"]["400"]
    assert bad["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/ErrorModel"}

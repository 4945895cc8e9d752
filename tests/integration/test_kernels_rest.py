"""The kernels REST API against a real server and real ipykernels."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.support import ROOT, Gateway, serve, stdout_of

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
MODEL_FIELDS = {"id", "name", "last_activity", "execution_state", "connections"}


def assert_clean(response: httpx.Response) -> None:
    """No response ever leaks a traceback, a source path or a library location."""
    text = response.text
    assert "Traceback" not in text
    assert 'File "' not in text
    assert "site-packages" not in text
    assert str(ROOT) not in text


def assert_error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.request.url, response.text[:500])
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"reason", "message"}
    assert isinstance(body["reason"], str)
    assert body["reason"]
    assert isinstance(body["message"], str)
    assert_clean(response)
    return dict(body)


def assert_kernel_model(model: dict[str, Any], *, name: str = "python3") -> None:
    assert set(model) == MODEL_FIELDS
    assert model["name"] == name
    assert TIMESTAMP.match(model["last_activity"]), model["last_activity"]
    assert isinstance(model["connections"], int)
    assert model["execution_state"] in {"idle", "busy", "starting"}
    uuid.UUID(model["id"])


async def listed(gateway: Gateway) -> list[str]:
    response = await gateway.client.get("/api/kernels")
    assert response.status_code == 200, response.text
    return [k["id"] for k in response.json()]


async def test_api_version(gateway: Gateway) -> None:
    response = await gateway.client.get("/api")
    assert response.status_code == 200
    body = response.json()
    assert isinstance(body["version"], str)
    assert body["version"]
    assert body["gateway"] == "fastkg"  # a documented difference: KG answers Jupyter Server's version alone


async def test_kernel_lifecycle(gateway: Gateway) -> None:
    assert await listed(gateway) == []
    response = await gateway.client.post("/api/kernels", json={"name": "python3"})
    assert response.status_code == 201, response.text
    model = response.json()
    assert_kernel_model(model)
    kernel_id = model["id"]
    assert response.headers["location"] == f"/api/kernels/{kernel_id}"
    assert model["connections"] == 0

    assert await listed(gateway) == [kernel_id]
    listing = (await gateway.client.get("/api/kernels")).json()
    assert_kernel_model(listing[0])

    one = await gateway.client.get(f"/api/kernels/{kernel_id}")
    assert one.status_code == 200
    assert_kernel_model(one.json())
    assert one.json()["id"] == kernel_id

    ws = await gateway.connect(kernel_id)
    reply, _ = await ws.execute("survivor = 'before restart'")
    assert reply["status"] == "ok"
    assert (await gateway.client.get(f"/api/kernels/{kernel_id}")).json()["connections"] == 1

    interrupted = await gateway.client.post(f"/api/kernels/{kernel_id}/interrupt")
    assert interrupted.status_code == 204
    assert interrupted.content == b""

    restarted = await gateway.client.post(f"/api/kernels/{kernel_id}/restart")
    assert restarted.status_code == 200, restarted.text
    assert_kernel_model(restarted.json())
    assert restarted.json()["id"] == kernel_id
    # a restart really restarted the process: the variable is gone
    reply, outputs = await ws.execute("print('survivor' in globals())")
    assert reply["status"] == "ok"
    assert stdout_of(outputs) == "False\n"
    await ws.close()

    deleted = await gateway.client.delete(f"/api/kernels/{kernel_id}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_error(await gateway.client.get(f"/api/kernels/{kernel_id}"), 404)
    assert await listed(gateway) == []


async def test_interrupt_stops_running_code(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    ws = await gateway.connect(kernel_id)
    code = "import time; print('sleeping', flush=True); time.sleep(60)"
    msg_id = await ws.send("execute_request", {"code": code, "silent": False})
    # Interrupt once user code runs: a SIGINT that lands while the kernel is still setting up the
    # execution can be lost (that is ipykernel's behaviour, whoever sends the signal).
    await ws.until(lambda m: m.parent_id == msg_id and m.content.get("text") == "sleeping\n")
    response = await gateway.client.post(f"/api/kernels/{kernel_id}/interrupt")
    assert response.status_code == 204
    reply = await ws.until(lambda m: m.parent_id == msg_id and m.msg_type == "execute_reply", limit=20)
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "KeyboardInterrupt"
    await ws.close()


async def test_unknown_kernel_id_on_every_route(gateway: Gateway) -> None:
    unknown = str(uuid.uuid4())
    for method, path in [
        ("GET", f"/api/kernels/{unknown}"),
        ("DELETE", f"/api/kernels/{unknown}"),
        ("POST", f"/api/kernels/{unknown}/interrupt"),
        ("POST", f"/api/kernels/{unknown}/restart"),
        ("GET", "/api/kernels/not-even-a-uuid"),
    ]:
        body = assert_error(await gateway.client.request(method, path), 404)
        assert body["reason"] == "Not Found"
    with pytest.raises(InvalidStatus) as refused:
        await connect(gateway.ws_url(unknown), open_timeout=10)
    assert refused.value.response.status_code == 404


async def test_unknown_kernel_name_is_404(gateway: Gateway) -> None:
    body = assert_error(await gateway.client.post("/api/kernels", json={"name": "no-such-kernel"}), 404)
    assert "no-such-kernel" in body["message"]
    assert await listed(gateway) == []


BAD_BODIES: list[tuple[bytes, set[int]]] = [
    (b"{not json", {400}),
    (b'{"name": "python3"', {400}),
    (json.dumps({"name": 5}).encode(), {400}),
    (json.dumps({"env": "x"}).encode(), {400}),
    (json.dumps({"env": {"KERNEL_A": {"nested": 1}}}).encode(), {400}),
    (json.dumps({"env": ["KERNEL_A"]}).encode(), {400}),
    (json.dumps([1, 2]).encode(), {400}),
    (json.dumps("python3").encode(), {400}),
]


async def test_bad_start_bodies(gateway: Gateway) -> None:
    for content, statuses in BAD_BODIES:
        response = await gateway.client.post(
            "/api/kernels", content=content, headers={"content-type": "application/json"}
        )
        assert response.status_code in statuses, (content, response.text)
        assert_error(response, response.status_code)
    assert await listed(gateway) == []


async def test_bodies_are_json_whatever_their_content_type(gateway: Gateway) -> None:
    """As in Jupyter Server: JupyterLab's client posts JSON declared as text/plain (or with no type)."""
    for content_type in ("text/plain;charset=UTF-8", None, "application/x-www-form-urlencoded"):
        headers = {"content-type": content_type} if content_type else {}
        response = await gateway.client.post("/api/kernels", content=b'{"name": "python3"}', headers=headers)
        assert response.status_code == 201, (content_type, response.text)
        kernel_id = response.json()["id"]
        body = json.dumps({"path": "a.ipynb", "type": "notebook", "name": "a", "kernel": {"id": kernel_id}})
        response = await gateway.client.post("/api/sessions", content=body, headers=headers)
        assert response.status_code == 201, (content_type, response.text)
        session = response.json()
        response = await gateway.client.patch(
            f"/api/sessions/{session['id']}", content=b'{"path": "b.ipynb"}', headers=headers
        )
        assert response.status_code == 200, (content_type, response.text)
        assert response.json()["path"] == "b.ipynb"
    for content in (b"{not json", b'{"name": 3}'):
        response = await gateway.client.post(
            "/api/kernels", content=content, headers={"content-type": "text/plain"}
        )
        assert_error(response, 400)


async def test_empty_body_starts_default_kernel(gateway: Gateway) -> None:
    response = await gateway.client.post("/api/kernels", content=b"")
    assert response.status_code == 201, response.text
    assert_kernel_model(response.json())
    assert await listed(gateway) == [response.json()["id"]]


async def test_listing_disabled_by_default() -> None:
    async with serve() as gw:
        body = assert_error(await gw.client.get("/api/kernels"), 403)
        assert body["reason"] == "Forbidden"
        # other routes still work without listing
        assert (await gw.client.get("/api")).status_code == 200
        assert_error(await gw.client.get(f"/api/kernels/{uuid.uuid4()}"), 404)


async def test_body_over_one_mib_is_413(gateway: Gateway) -> None:
    big = json.dumps({"name": "python3", "env": {"KERNEL_PAD": "x" * (1024 * 1024)}}).encode()
    assert_error(
        await gateway.client.post("/api/kernels", content=big, headers={"content-type": "application/json"}),
        413,
    )

    async def chunks() -> Any:
        for _ in range(20):
            yield b" " * (64 * 1024)
        yield b"{}"

    streamed = await gateway.client.post(
        "/api/kernels", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_error(streamed, 413)
    # just under the limit is fine as far as size goes (then the body is judged on its merits)
    padded = b"{}" + b" " * (1024 * 1024 - 10)
    ok = await gateway.client.post(
        "/api/kernels", content=padded, headers={"content-type": "application/json"}
    )
    assert ok.status_code == 201, ok.text
    assert await listed(gateway) == [ok.json()["id"]]


UNKNOWN_PATHS = [
    "/",
    "/nope",
    "/api/nope",
    "/api/contents",
    "/api/contents/notebook.ipynb",
    "/tree",
    "/tree/x",
    "/lab",
    "/notebooks/x.ipynb",
    "/api/terminals",
    "/login",
    "/api/kernels/x/y/z",
]


async def test_unknown_routes_are_json_404(gateway: Gateway) -> None:
    for path in UNKNOWN_PATHS:
        for method in ("GET", "POST"):
            response = await gateway.client.request(method, path)
            assert response.status_code in (404, 405), (method, path)
            assert_error(response, response.status_code)
        assert_error(await gateway.client.get(path), 404)
    assert_error(await gateway.client.put("/api/kernels"), 405)
    assert_error(await gateway.client.patch(f"/api/kernels/{uuid.uuid4()}"), 405)


async def test_forced_kernel_name_beats_requested() -> None:
    async with serve(force_kernel_name="python3", list_kernels=True) as gw:
        response = await gw.client.post("/api/kernels", json={"name": "does-not-exist"})
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "python3"
    async with serve(force_kernel_name="forced-but-missing") as gw:
        body = assert_error(await gw.client.post("/api/kernels", json={"name": "python3"}), 404)
        assert "forced-but-missing" in body["message"]
        assert_error(await gw.client.post("/api/kernels", json={}), 404)


async def test_default_kernel_name_resolution() -> None:
    async with serve(default_kernel_name="default-but-missing", list_kernels=True) as gw:
        specs = (await gw.client.get("/api/kernelspecs")).json()
        assert specs["default"] == "default-but-missing"
        body = assert_error(await gw.client.post("/api/kernels", json={}), 404)
        assert "default-but-missing" in body["message"]
        # a requested name beats the default
        response = await gw.client.post("/api/kernels", json={"name": "python3"})
        assert response.status_code == 201, response.text
        assert response.json()["name"] == "python3"


async def test_base_url_prefixes_every_route() -> None:
    async with serve(base_url="/gw/", list_kernels=True) as gw:
        assert gw.url.endswith("/gw")
        assert (await gw.client.get("/api")).status_code == 200
        response = await gw.client.post("/api/kernels", json={})
        assert response.status_code == 201
        assert response.headers["location"] == f"/gw/api/kernels/{response.json()['id']}"
        async with httpx.AsyncClient(base_url=gw.url.removesuffix("/gw")) as bare:
            assert_error(await bare.get("/api"), 404)
            assert_error(await bare.get("/api/kernels"), 404)


ENV_PROBE = (
    "import os, json\n"
    "print(json.dumps({k: os.environ.get(k) for k in "
    "['KERNEL_FOO', 'OTHER', 'WL_VAR', 'PROC_WL', 'GATEWAY_ONLY', 'KERNEL_GATEWAY', 'KG_AUTH_TOKEN',"
    " 'PATH']}))"
)


async def probe_env(gw: Gateway, kernel_id: str) -> dict[str, str | None]:
    ws = await gw.connect(kernel_id)
    reply, outputs = await ws.execute(ENV_PROBE)
    await ws.close()
    assert reply["status"] == "ok", reply
    return dict(json.loads(stdout_of(outputs)))


async def test_env_policy_end_to_end(monkeypatch: pytest.MonkeyPatch) -> None:
    token = "env-policy-token-" + uuid.uuid4().hex
    monkeypatch.setenv("KG_AUTH_TOKEN", token)
    monkeypatch.setenv("GATEWAY_ONLY", "g")
    monkeypatch.setenv("PROC_WL", "p")
    async with serve(env_whitelist=["WL_VAR"], env_process_whitelist=["PROC_WL"]) as gw:
        assert gw.token == token  # the process environment holds the token
        with_env = await gw.start_kernel(env={"KERNEL_FOO": "1", "OTHER": "x", "WL_VAR": "w"})
        env = await probe_env(gw, with_env)
        assert env["KERNEL_FOO"] == "1"
        assert env["OTHER"] is None
        assert env["WL_VAR"] == "w"
        assert env["PROC_WL"] == "p"
        assert env["GATEWAY_ONLY"] is None
        assert env["KERNEL_GATEWAY"] == "1"
        assert env["KG_AUTH_TOKEN"] is None
        assert env["PATH"]

        without_env = await gw.start_kernel()
        env = await probe_env(gw, without_env)
        assert env["GATEWAY_ONLY"] == "g"
        assert env["PROC_WL"] == "p"
        assert env["KERNEL_GATEWAY"] == "1"
        assert env["KG_AUTH_TOKEN"] is None
        assert env["KERNEL_FOO"] is None

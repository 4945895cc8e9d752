"""The admin JSON API: cookie login for /admin/api only, CSRF, FASTKG_ADMIN modes, kernel rows."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx
import pytest

from app.config import Settings
from tests.services_support import multipart, notebook
from tests.support import Gateway, free_port, serve

TOKEN = "admin-token-0123456789"


async def login(gw: Gateway) -> httpx.AsyncClient:
    browser = httpx.AsyncClient(base_url=gw.url, timeout=60)
    session = await browser.get("/admin/api/session")
    assert session.json() == {
        "token_required": True,
        "authenticated": False,
        "csrf_token": browser.cookies["fastkg_csrf"],
    }
    assert (await browser.post("/admin/api/login", json={"token": "wrong"})).status_code == 401
    response = await browser.post("/admin/api/login", json={"token": TOKEN})
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert TOKEN not in cookie
    return browser


@pytest.mark.timeout(180)
async def test_cookie_login_csrf_and_kernel_actions() -> None:
    async with serve(auth_token=TOKEN, list_kernels=True, warm_pool=1, cull_idle_timeout=3600) as gw:
        kernel_id = await gw.start_kernel(env={"KERNEL_USERNAME": "alice"})
        anonymous = httpx.AsyncClient(base_url=gw.url)
        assert (await anonymous.get("/admin/api/kernels")).status_code == 401
        assert (await anonymous.get("/admin")).status_code == 200  # the page shell holds no data
        browser = await login(gw)
        try:
            assert (await browser.get("/api/kernels")).status_code == 401  # the cookie is for admin only
            rows = (await browser.get("/admin/api/kernels")).json()
            mine = next(r for r in rows if r["id"] == kernel_id)
            assert (mine["owner"], mine["name"], mine["actions"], mine["holder"]) == (
                "alice",
                "python3",
                True,
                None,
            )
            assert mine["memory_bytes"] > 10_000_000
            assert 3500 < mine["cull_in_seconds"] <= 3600
            assert mine["usage_source"] == "kernel"  # ipykernel answered usage_request
            warm = [r for r in rows if r["holder"] == "warm pool"]
            assert len(warm) == 1
            assert warm[0]["actions"] is False
            assert warm[0]["cull_in_seconds"] is None  # warm kernels are never culled
            csrf = {"X-CSRF-Token": browser.cookies["fastkg_csrf"]}
            restart = f"/admin/api/kernels/{kernel_id}/restart"
            assert (await browser.post(restart)).status_code == 403
            assert (await browser.post(restart, headers={"X-CSRF-Token": "forged"})).status_code == 403
            assert (await browser.post(restart, headers=csrf)).status_code == 204
            rows = (await browser.get("/admin/api/kernels")).json()
            assert next(r for r in rows if r["id"] == kernel_id)["restarts"] == 1
            # the token itself works without CSRF (scripts), the cookie needs it
            assert (await gw.client.post(f"/admin/api/kernels/{kernel_id}/interrupt")).status_code == 204
            overview = (await browser.get("/admin/api/overview")).json()
            assert (overview["kernels"], overview["warm"], overview["ready"]) == (1, 1, True)
            idle = await browser.post(
                "/admin/api/kernels/shutdown-idle", json={"idle_seconds": 0}, headers=csrf
            )
            assert idle.json() == {"shut_down": [kernel_id]}
            assert (await gw.client.get(f"/api/kernels/{kernel_id}")).status_code == 404
            services = await browser.get("/admin/api/services")
            assert services.status_code == 404  # no notebook services on this gateway: the panel says so
            assert (await browser.post("/admin/api/logout", headers=csrf)).status_code == 204
            assert (await browser.get("/admin/api/kernels")).status_code == 401
        finally:
            await browser.aclose()
            await anonymous.aclose()


async def sse(stream: httpx.Response) -> AsyncIterator[tuple[str, str]]:
    """(event, data) of each server-sent event on `stream`."""
    event, data = "message", []
    async for line in stream.aiter_lines():
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith("event: "):
            event = line.removeprefix("event: ")
        elif line.startswith("data: "):
            data.append(line.removeprefix("data: "))


@pytest.mark.timeout(120)
async def test_idle_shutdown_takes_only_a_number() -> None:
    """The API fuzzer's {"idle_seconds": false} was read as 0 and shut down every idle kernel."""
    async with serve(auth_token=TOKEN, list_kernels=True) as gw:
        kernel_id = await gw.start_kernel()
        for idle in (False, True, "0", None, -1):
            refused = await gw.client.post("/admin/api/kernels/shutdown-idle", json={"idle_seconds": idle})
            assert refused.status_code == 400, (idle, refused.text)
            assert set(refused.json()) == {"reason", "message"}
        assert (await gw.client.get(f"/api/kernels/{kernel_id}")).status_code == 200
        kept = await gw.client.post("/admin/api/kernels/shutdown-idle", json={"idle_seconds": 3600})
        assert kept.json() == {"shut_down": []}  # an integer is a number


@pytest.mark.timeout(120)
async def test_services_forwarding_keeps_the_name_it_was_given() -> None:
    """The API fuzzer's GET /admin/api/services/%07 answered 500: the decoded name went into the
    forwarded URL as it was, and httpx refuses a control character. Names are sent percent-encoded."""
    async with serve(auth_token=TOKEN, api="jupyter-websocket,services") as gw:
        for quoted, name in (("%07x", "\x07x"), ("a%3Fb", "a?b"), ("a%20b", "a b"), ("..v", "..v")):
            for method in ("GET", "DELETE"):
                response = await gw.client.request(method, f"/admin/api/services/{quoted}")
                assert response.status_code == 404, (method, quoted, response.text)
                assert response.json() == {"reason": "Not Found", "message": f"No such service: {name}"}
        escape = await gw.client.get("/admin/api/services/%2E%2E/%2E%2E/kernels")  # never the kernel API
        assert escape.json() == {"reason": "Bad Request", "message": "Bad service path"}
        assert (await gw.client.get("/admin/api/services")).json() == []
        put = await gw.client.put("/admin/api/services")
        assert (put.status_code, put.headers["allow"]) == (405, "GET, POST, OPTIONS")


@pytest.mark.timeout(120)
async def test_events_stream_snapshots() -> None:
    async with serve(auth_token=TOKEN, list_kernels=True) as gw:
        browser = await login(gw)
        try:
            async with browser.stream("GET", "/admin/api/events") as stream:
                assert stream.headers["content-type"].startswith("text/event-stream")
                kernel_id, kinds = "", set()
                async with asyncio.timeout(60):
                    async for kind, data in sse(stream):
                        kinds.add(kind)
                        if not kernel_id:
                            assert json.loads(data)["overview"]["services"] is False
                            kernel_id = await gw.start_kernel()  # the next snapshot must show it
                        elif kernel_id in data:
                            break
                assert kinds == {"snapshot"}  # no services personality: no services events
        finally:
            await browser.aclose()


@pytest.mark.timeout(180)
async def test_events_stream_services() -> None:
    """With the services API on, the stream pushes the services rows (traffic numbers included) when they
    change, so the page needs no polling; unchanged rows are not sent again."""
    async with serve(auth_token=TOKEN, api="jupyter-websocket,services") as gw:
        browser = await login(gw)
        try:
            async with browser.stream("GET", "/admin/api/events") as stream, asyncio.timeout(60):
                events = sse(stream)
                assert await anext(events) == ("services", "[]")
                kind, data = await anext(events)
                assert (kind, json.loads(data)["overview"]["services"]) == ("snapshot", True)
            raw = notebook("# GET /hello\nprint('hi')")
            deployed = await gw.client.post("/api/services", **multipart("hello", raw))
            assert deployed.status_code == 201, deployed.text
            async with browser.stream("GET", "/admin/api/events") as stream, asyncio.timeout(60):
                events = sse(stream)
                kind, data = await anext(events)
                assert kind == "services"
                assert json.loads(data) == (await browser.get("/admin/api/services")).json()
                assert json.loads(data)[0]["traffic"]["requests"] == 0
                for _ in range(3):
                    assert (await gw.client.get("/services/hello/hello")).text == "hi\n"
                async for kind, data in events:  # pushed within a tick, no request for it
                    if kind == "services" and json.loads(data)[0]["traffic"]["requests"] == 3:
                        break
                assert json.loads(data) == (await browser.get("/admin/api/services")).json()
                following = [await anext(events) for _ in range(2)]
                assert [kind for kind, _ in following] == ["snapshot", "snapshot"]  # nothing changed
        finally:
            await browser.aclose()


@pytest.mark.timeout(120)
@pytest.mark.parametrize(
    ("overrides", "served"),
    [
        ({"admin": "off", "auth_token": TOKEN}, False),
        ({"admin": "auto", "ip": "0.0.0.0"}, False),  # no token, reachable from elsewhere: off
        ({"admin": "auto", "ip": "0.0.0.0", "auth_token": TOKEN}, True),
        ({"admin": "auto"}, True),  # loopback
        ({"admin": "on", "ip": "0.0.0.0"}, True),
    ],
)
async def test_admin_modes(overrides: dict[str, str], served: bool) -> None:
    settings = Settings(port=free_port(), **overrides)
    async with serve(settings) as gw:
        page = await gw.client.get("/admin")
        api = await gw.client.get("/admin/api/overview")
        assert (page.status_code == 200, api.status_code == 200) == (served, served)
        document = (await gw.client.get("/openapi.json")).json()
        assert ("/admin/api/kernels" in document["paths"]) is served

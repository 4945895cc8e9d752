"""Probes and /metrics against real activity: parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.services_support import multipart, notebook
from tests.support import NOTEBOOKS, Gateway, serve

TOKEN = "ops-token-0123456789"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(gw: Gateway) -> str:
    response = await gw.client.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return response.text


@pytest.mark.timeout(180)
async def test_probes_need_no_token_and_metrics_does() -> None:
    async with serve(auth_token=TOKEN) as gw:
        async with httpx.AsyncClient(base_url=gw.url) as anonymous:
            live = await anonymous.get("/livez")
            ready = await anonymous.get("/readyz")
            assert (live.status_code, live.json()) == (200, {"status": "ok"})
            assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
            refused = await anonymous.get("/metrics")
            assert refused.status_code == 401
            assert (await anonymous.get("/api")).status_code == 401
        text = await scrape(gw)
        assert value(text, "fastkg_ready") == 1
        assert value(text, "process_resident_memory_bytes") > 0


@pytest.mark.timeout(180)
async def test_metrics_public_when_configured() -> None:
    async with (
        serve(auth_token=TOKEN, metrics_public=True) as gw,
        httpx.AsyncClient(base_url=gw.url) as anonymous,
    ):
        assert (await anonymous.get("/metrics")).status_code == 200
        assert (await anonymous.get("/api/kernels")).status_code == 401


@pytest.mark.timeout(180)
async def test_metrics_off_removes_the_route_but_keeps_request_ids() -> None:
    async with serve(auth_token=TOKEN, metrics=False, metrics_public=True) as gw:
        assert (await gw.client.get("/metrics")).status_code == 404
        answered = await gw.client.get("/api")
        assert answered.status_code == 200
        assert answered.headers["x-request-id"]
        async with httpx.AsyncClient(base_url=gw.url) as anonymous:
            assert (await anonymous.get("/metrics")).status_code == 401  # no public exemption left


@pytest.mark.timeout(240)
async def test_metrics_follow_real_activity() -> None:
    async with serve(auth_token=TOKEN, list_kernels=True) as gw:
        kernel_id = await gw.start_kernel()
        await gw.client.get(f"/api/kernels/{kernel_id}")
        await gw.client.get("/api/kernels/not-a-kernel")
        await gw.client.get("/no/such/path")
        socket = await gw.connect(kernel_id)
        try:
            reply, _ = await socket.execute("print('hi')")
            assert reply["status"] == "ok"
            text = await scrape(gw)
            assert value(text, "fastkg_websocket_connections_open") == 1
        finally:
            await socket.close()
        restarted = await gw.client.post(f"/api/kernels/{kernel_id}/restart")
        assert restarted.status_code == 200
        text = await scrape(gw)
        assert value(text, "fastkg_kernels", kernelspec="python3", state="idle") == 1
        assert value(text, "fastkg_kernel_starts_total", kernelspec="python3") == 1
        assert value(text, "fastkg_kernel_restarts_total", kernelspec="python3", reason="requested") == 1
        assert value(text, "fastkg_websocket_connections_total") == 1
        assert value(text, "fastkg_websocket_messages_total", direction="to_kernel") == 1
        # execute_input, stream, busy, idle and the reply at least
        assert value(text, "fastkg_websocket_messages_total", direction="to_client") >= 5
        by_route = "fastkg_http_requests_total"
        route = "/api/kernels/{kernel_id}"
        assert value(text, by_route, route="/api/kernels", method="POST", status="201") == 1
        assert value(text, by_route, route=route, method="GET", status="200") == 1
        assert value(text, by_route, route=route, method="GET", status="404") == 1
        assert value(text, by_route, route="<unmatched>", method="GET", status="404") == 1
        assert value(text, "fastkg_http_request_duration_seconds_count", route=route, method="GET") == 2
        # raw paths and ids never become label values
        assert kernel_id not in text
        assert "not-a-kernel" not in text
        assert "/no/such/path" not in text
        assert (await gw.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204
        text = await scrape(gw)
        assert value(text, "fastkg_kernels", kernelspec="python3", state="idle") == 0
        assert value(text, "fastkg_kernel_shutdowns_total", kernelspec="python3") == 1


@pytest.mark.timeout(180)
async def test_two_apps_in_one_process_have_their_own_registries() -> None:
    async with serve(auth_token=TOKEN) as first, serve(auth_token=TOKEN) as second:
        for _ in range(3):
            await first.client.get("/api")
        await second.client.get("/api")
        one, two = await asyncio.gather(scrape(first), scrape(second))
        labels = {"route": "/api", "method": "GET", "status": "200"}
        assert value(one, "fastkg_http_requests_total", **labels) == 3
        assert value(two, "fastkg_http_requests_total", **labels) == 1


@pytest.mark.timeout(120)
async def test_request_id_is_honoured_or_generated() -> None:
    async with serve(auth_token=TOKEN) as gw:
        given = await gw.client.get("/api", headers={"X-Request-Id": "abc-123"})
        assert given.headers["x-request-id"] == "abc-123"
        generated = await gw.client.get("/api", headers={"X-Request-Id": "bad id\twith junk" * 20})
        assert generated.headers["x-request-id"] != "abc-123"
        assert len(generated.headers["x-request-id"]) == 32
        async with httpx.AsyncClient(base_url=gw.url) as anonymous:
            refused = await anonymous.get("/api")
            assert refused.status_code == 401
            assert refused.headers["x-request-id"]


@pytest.mark.timeout(180)
async def test_automatic_restart_is_counted() -> None:
    async with serve(auth_token=TOKEN, list_kernels=True) as gw:
        kernel_id = await gw.start_kernel()
        socket = await gw.connect(kernel_id)
        try:
            reply, _ = await socket.execute("import os, signal; os.kill(os.getpid(), signal.SIGKILL)")
        except TimeoutError:
            reply = {}
        finally:
            await socket.close()
        assert reply.get("status") != "ok"
        async with asyncio.timeout(60):
            while True:
                text = await scrape(gw)
                labels = {"kernelspec": "python3", "reason": "automatic"}
                if value(text, "fastkg_kernel_restarts_total", **labels) == 1:
                    break
                await asyncio.sleep(0.2)
        rows = (await gw.client.get("/admin/api/kernels")).json()
        assert [r["restarts"] for r in rows if r["id"] == kernel_id] == [1]


@pytest.mark.timeout(180)
async def test_failed_start_is_counted() -> None:
    seed = str(NOTEBOOKS / "rest_seed_failing.ipynb")
    async with serve(auth_token=TOKEN, seed_uri=seed) as gw:
        assert (await gw.client.post("/api/kernels", json={})).status_code == 500
        text = await scrape(gw)
        assert value(text, "fastkg_kernel_start_failures_total", kernelspec="python3") == 1
        assert value(text, "fastkg_kernel_starts_total", kernelspec="python3") == 0
        assert (
            value(text, "fastkg_http_requests_total", route="/api/kernels", method="POST", status="500") == 1
        )


@pytest.mark.timeout(240)
async def test_every_notebook_services_pool_is_measured() -> None:
    """The pool metrics cover each service's serving version, not only the root notebook's pool."""
    async with serve(auth_token=TOKEN, api="services") as gw:
        raw = notebook("# GET /hello\nprint('hello')")
        for name, pool in (("alpha", "1"), ("beta", "2")):
            deployed = await gw.client.post("/api/services", **multipart(name, raw, pool_min=pool))
            assert deployed.status_code == 201, deployed.text
        assert (await gw.client.get("/services/beta/hello")).text == "hello\n"
        text = await scrape(gw)
        for name, size in (("alpha", 1), ("beta", 2)):
            labels = {"service": name, "version": ""}
            assert value(text, "fastkg_pool_size", **labels) == size
            assert value(text, "fastkg_pool_kernels", **labels, state="idle") == size
            assert value(text, "fastkg_pool_kernels", **labels, state="busy") == 0
            assert value(text, "fastkg_pool_waiting", **labels) == 0
        assert value(text, "fastkg_pool_wait_seconds_count", service="beta", version="") == 1
        assert value(text, "fastkg_pool_wait_seconds_count", service="alpha", version="") == 0
        endpoint = {"service": "beta", "version": "", "endpoint": "/services/beta/hello", "method": "GET"}
        assert value(text, "fastkg_notebook_requests_total", **endpoint, status="200") == 1
        assert (await gw.client.delete("/api/services/beta")).status_code == 204
        assert value(await scrape(gw), "fastkg_pool_size", service="beta", version="") == 0

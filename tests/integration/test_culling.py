"""Idle culling with jupyter_server's semantics, on real kernels with short timeouts."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import pytest

from app.cli import load_settings
from app.schemas import TIMESTAMP_FORMAT
from tests.integration.test_ops_metrics import scrape, value
from tests.support import Gateway, Received, execute_content, serve

TOKEN = "cull-token-0123456789"
FAST = {"auth_token": TOKEN, "list_kernels": True, "cull_idle_timeout": 2.0, "cull_interval": 0.3}


async def listed(gw: Gateway) -> set[str]:
    response = await gw.client.get("/api/kernels")
    assert response.status_code == 200
    return {k["id"] for k in response.json()}


async def wait_gone(gw: Gateway, kernel_id: str, limit: float = 30) -> float:
    began = time.monotonic()
    async with asyncio.timeout(limit):
        while kernel_id in await listed(gw):
            await asyncio.sleep(0.1)
    return time.monotonic() - began


@pytest.mark.timeout(180)
async def test_idle_kernel_is_culled_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "app.kernels.culler")
    async with serve(**FAST, warm_pool=1) as gw:
        kept = await gw.start_kernel()
        response = await gw.client.post("/api/kernels", json={})
        assert response.status_code == 201
        culled = response.json()["id"]
        idle_since = datetime.strptime(response.json()["last_activity"], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
        socket = await gw.connect(kept)  # connected kernels are spared (cull_connected is off)
        try:
            await wait_gone(gw, culled)
            # not before the idle timeout (measured from its last activity, whatever the machine's load)
            assert (datetime.now(UTC) - idle_since).total_seconds() >= FAST["cull_idle_timeout"]
            await asyncio.sleep(2.5)
            assert kept in await listed(gw)
            assert gw.app.state.gateway.kernels.stats().warm == 1  # warm kernels are never culled
            text = await scrape(gw)
            assert value(text, "fastkg_kernel_culls_total", kernelspec="python3") == 1
        finally:
            await socket.close()
        await wait_gone(gw, kept)  # ... until their last connection closes
    messages = [r.getMessage() for r in caplog.records if r.name == "app.kernels.culler"]
    assert any(culled in m and "culling" in m for m in messages)


@pytest.mark.timeout(180)
async def test_cull_connected_culls_kernels_with_connections() -> None:
    async with serve(**FAST, cull_connected=True) as gw:
        kernel_id = await gw.start_kernel()
        socket = await gw.connect(kernel_id)
        try:
            await wait_gone(gw, kernel_id)
        finally:
            await socket.close()


@pytest.mark.timeout(180)
async def test_busy_kernels_are_spared_unless_cull_busy() -> None:
    async with serve(**FAST, cull_connected=True) as gw:
        kernel_id = await gw.start_kernel()
        socket = await gw.connect(kernel_id)
        try:
            reply, _ = await socket.execute("import time; time.sleep(4)", limit=60)
            assert reply["status"] == "ok"  # idle for 4 s while busy, and not culled meanwhile
            await wait_gone(gw, kernel_id)
        finally:
            await socket.close()
    async with serve(**FAST, cull_connected=True, cull_busy=True) as gw:
        kernel_id = await gw.start_kernel()
        socket = await gw.connect(kernel_id)
        try:
            await socket.send("execute_request", {"code": "import time; time.sleep(30)", "silent": False})
            await wait_gone(gw, kernel_id, limit=20)
        finally:
            await socket.close()


@pytest.mark.timeout(120)
async def test_activity_postpones_culling() -> None:
    # a longer timeout than FAST's, so that a loaded machine's slow executions never leave a 4 s gap
    async with serve(**{**FAST, "cull_idle_timeout": 4.0}, cull_connected=True) as gw:
        kernel_id = await gw.start_kernel()
        socket = await gw.connect(kernel_id)
        try:
            for _ in range(6):  # 6 runs 1 s apart (6 s in all): never 4 s idle
                reply, _ = await socket.execute("1 + 1")
                assert reply["status"] == "ok"
                await asyncio.sleep(1)
            assert kernel_id in await listed(gw)
        finally:
            await socket.close()


def test_kernel_gateway_spellings_reach_the_cull_settings() -> None:
    settings = load_settings(
        [
            "--MappingKernelManager.cull_idle_timeout=600",
            "--MappingKernelManager.cull_interval=30",
            "--MappingKernelManager.cull_connected=True",
            "--MappingKernelManager.cull_busy=true",
        ]
    )
    assert (settings.cull_idle_timeout, settings.cull_interval) == (600, 30)
    assert settings.cull_connected is True
    assert settings.cull_busy is True
    assert load_settings([]).cull_idle_timeout == 0  # off by default, as in jupyter_server


@pytest.mark.timeout(120)
async def test_watching_usage_does_not_postpone_culling() -> None:
    """The admin page asks kernels for usage_request every few seconds: that is not activity."""
    async with serve(**FAST) as gw:
        kernel_id = await gw.start_kernel()
        sources = set()
        async with asyncio.timeout(30):
            while kernel_id in await listed(gw):
                rows = (await gw.client.get("/admin/api/kernels")).json()
                sources |= {r["usage_source"] for r in rows if r["id"] == kernel_id}
                await asyncio.sleep(0.3)
        assert sources == {"kernel"}  # it answered usage_request, and was culled all the same


def probe_status(message: Received, state: str) -> bool:
    """An iopub status of the gateway's own usage probe (relayed to clients, as every iopub message)."""
    parent_type = message.raw.get("parent_header", {}).get("msg_type")
    return parent_type == "usage_request" and message.content.get("execution_state") == state


@pytest.mark.timeout(120)
async def test_usage_probes_do_not_change_the_execution_state() -> None:
    """ipykernel answers usage_request on control with busy/idle statuses of its own: a running cell
    must stay busy (or the culler could take it for idle), an idle kernel idle with its countdown."""
    async with serve(auth_token=TOKEN, list_kernels=True, cull_idle_timeout=3600) as gw:
        idle_id = await gw.start_kernel()
        rows = (await gw.client.get("/admin/api/kernels")).json()  # probed now, then cached a while
        mine = next(r for r in rows if r["id"] == idle_id)
        assert (mine["state"], mine["usage_source"]) == ("idle", "kernel")
        assert 3500 < mine["cull_in_seconds"] <= 3600
        busy_id = await gw.start_kernel()  # not probed yet
        ws = await gw.connect(busy_id)
        try:
            msg_id = await ws.send("execute_request", execute_content("import time; time.sleep(3)"))
            await ws.until(lambda m: m.parent_id == msg_id and m.content.get("execution_state") == "busy")
            probe = asyncio.create_task(ws.until(lambda m: probe_status(m, "idle")))
            rows = (await gw.client.get("/admin/api/kernels")).json()
            assert next(r for r in rows if r["id"] == busy_id)["usage_source"] == "kernel"
            await probe  # the probe's own idle status has come, while the cell still runs
            state = (await gw.client.get(f"/api/kernels/{busy_id}")).json()["execution_state"]
            assert state == "busy"
            await ws.until(lambda m: m.parent_id == msg_id and m.content.get("execution_state") == "idle")
            state = (await gw.client.get(f"/api/kernels/{busy_id}")).json()["execution_state"]
            assert state == "idle"
        finally:
            await ws.close()

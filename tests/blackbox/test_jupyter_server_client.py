"""A real third-party client, unchanged: `jupyter server --gateway-url=<fastkg>` driven through its API.

Jupyter Server proxies kernelspecs, kernels and the channels websocket to the gateway; every request here goes
to Jupyter Server, and fastkg's own API is only used to check what the gateway saw.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect

from tests.support import Gateway, KernelSocket, fastkg_process, free_port, stdout_of, stop_process

pytest.importorskip("jupyter_server", reason="jupyter_server is in the test extras")

FASTKG_TOKEN = "fastkg-token-for-jupyter-server"
SERVER_TOKEN = "jupyter-server-token"
V1 = "v1.kernel.websocket.jupyter.org"


@dataclass
class Stack:
    gateway: Gateway
    server_url: str
    server_log: Path

    def logs(self) -> str:
        return (
            f"\n--- fastkg log (tail) ---\n{self.gateway.log()[-4000:]}"
            f"\n--- jupyter server log (tail) ---\n{self.server_log.read_text(errors='replace')[-4000:]}"
        )

    def ws_url(self, kernel_id: str, session_id: str | None = None) -> str:
        base = self.server_url.replace("http", "ws", 1)
        query = f"session_id={session_id or uuid.uuid4().hex}&token={SERVER_TOKEN}"
        return f"{base}/api/kernels/{kernel_id}/channels?{query}"


def wait_for_server(url: str, process: subprocess.Popen[bytes], log: Path, limit: float = 90) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jupyter server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/status", params={"token": SERVER_TOKEN}, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"jupyter server did not start:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("jupyter-server")
    env = {"KG_AUTH_TOKEN": FASTKG_TOKEN, "KG_LIST_KERNELS": "True"}
    with fastkg_process(env, tmp) as gateway:
        port = free_port()
        root = tmp / "root"
        (root / "work").mkdir(parents=True)
        server_env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("KG_", "JUPYTER_GATEWAY_"))},
            "JUPYTER_CONFIG_DIR": str(tmp / "config"),
            "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
        }
        log_path = tmp / "jupyter-server.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "jupyter_server",
                    "--ip=127.0.0.1",
                    f"--port={port}",
                    "--port-retries=0",
                    f"--gateway-url={gateway.url}",
                    f"--GatewayClient.auth_token={FASTKG_TOKEN}",
                    "--GatewayClient.request_timeout=120",
                    f"--ServerApp.token={SERVER_TOKEN}",
                    f"--ServerApp.root_dir={root}",
                    "--no-browser",
                    "--allow-root",
                ],
                env=server_env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=root,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_server(url, process, log_path)
            yield Stack(gateway, url, log_path)
        finally:
            stop_process(process)


@contextlib.asynccontextmanager
async def clients(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """(jupyter server client, fastkg client); any failure inside shows both logs."""
    server = httpx.AsyncClient(
        base_url=stack.server_url, headers={"Authorization": f"token {SERVER_TOKEN}"}, timeout=120
    )
    gateway = httpx.AsyncClient(
        base_url=stack.gateway.url, headers={"Authorization": f"token {FASTKG_TOKEN}"}, timeout=60
    )
    try:
        async with server, gateway:
            yield server, gateway
    except Exception as exc:
        raise AssertionError(f"{exc}{stack.logs()}") from exc


async def fastkg_kernel_ids(gateway: httpx.AsyncClient) -> set[str]:
    response = await gateway.get("/api/kernels")
    assert response.status_code == 200, response.text
    return {kernel["id"] for kernel in response.json()}


async def execute(url: str, code: str, *, offer_v1: bool = False) -> tuple[dict[str, Any], str]:
    """Run code over Jupyter Server's channels websocket; (execute_reply content, stdout)."""
    subprotocols = [V1] if offer_v1 else None
    async with connect(url, subprotocols=subprotocols, open_timeout=60, max_size=None) as ws:  # type: ignore[arg-type]
        # Jupyter Server relays the gateway's legacy JSON protocol, so it never agrees to v1 here.
        assert ws.subprotocol is None, f"negotiated {ws.subprotocol!r}"
        reply, outputs = await KernelSocket(ws, v1=False).execute(code, limit=90)
    return reply, stdout_of(outputs)


async def test_kernelspecs_are_proxied(stack: Stack) -> None:
    async with clients(stack) as (server, gateway):
        response = await server.get("/api/kernelspecs")
        assert response.status_code == 200, response.text
        proxied = response.json()
        direct = (await gateway.get("/api/kernelspecs")).json()
        assert set(proxied["kernelspecs"]) == set(direct["kernelspecs"])
        assert "python3" in proxied["kernelspecs"]
        assert proxied["default"] == direct["default"] == "python3"
        spec = proxied["kernelspecs"]["python3"]["spec"]
        assert spec["language"] == "python"
        # Resource files go through the gateway too.
        logo = await server.get("/kernelspecs/python3/logo-64x64.png")
        assert logo.status_code == 200, logo.text[:500]
        assert logo.content.startswith(b"\x89PNG")
        assert logo.content == (await gateway.get("/kernelspecs/python3/logo-64x64.png")).content
        assert "Falling back to reading from disk" not in stack.server_log.read_text(), "not served by fastkg"


async def test_kernel_lifecycle_through_jupyter_server(stack: Stack) -> None:
    async with clients(stack) as (server, gateway):
        response = await server.post("/api/kernels", json={"name": "python3"})
        assert response.status_code == 201, response.text
        kernel_id = response.json()["id"]
        assert kernel_id in await fastkg_kernel_ids(gateway), "the kernel was not started on fastkg"

        model = (await server.get(f"/api/kernels/{kernel_id}")).json()
        assert model["name"] == "python3"
        assert (await server.get("/api/kernels")).status_code == 200

        url = stack.ws_url(kernel_id)
        reply, out = await execute(url, "x = 6 * 7\nprint('via jupyter server', x)")
        assert reply["status"] == "ok", reply
        assert out == "via jupyter server 42\n"
        # A client that offers the v1 subprotocol (JupyterLab does) falls back to legacy and still works.
        reply, out = await execute(stack.ws_url(kernel_id), "print(x + 1)", offer_v1=True)
        assert reply["status"] == "ok", reply
        assert out == "43\n"

        connected = (await gateway.get(f"/api/kernels/{kernel_id}")).json()
        assert connected["execution_state"] in ("idle", "busy")

        restarted = await server.post(f"/api/kernels/{kernel_id}/restart")
        assert restarted.status_code == 200, restarted.text
        reply, out = await execute(stack.ws_url(kernel_id), "print('x' in globals())")
        assert reply["status"] == "ok", reply
        assert out == "False\n", "the restart did not reach the kernel"
        assert (await server.post(f"/api/kernels/{kernel_id}/interrupt")).status_code == 204

        deleted = await server.delete(f"/api/kernels/{kernel_id}")
        assert deleted.status_code == 204, deleted.text
        assert kernel_id not in await fastkg_kernel_ids(gateway), "DELETE did not reach fastkg"
        assert (await gateway.get(f"/api/kernels/{kernel_id}")).status_code == 404
        assert (await server.get(f"/api/kernels/{kernel_id}")).status_code == 404


async def test_sessions_through_jupyter_server(stack: Stack) -> None:
    async with clients(stack) as (server, gateway):
        before = await fastkg_kernel_ids(gateway)
        body = {"path": "work/analysis.ipynb", "name": "analysis.ipynb", "type": "notebook"}
        response = await server.post("/api/sessions", json={**body, "kernel": {"name": "python3"}})
        assert response.status_code == 201, response.text
        session = response.json()
        session_id, kernel_id = session["id"], session["kernel"]["id"]
        assert session["path"] == "work/analysis.ipynb"
        assert kernel_id in await fastkg_kernel_ids(gateway) - before

        listed = (await server.get("/api/sessions")).json()
        assert [s["id"] for s in listed if s["kernel"]["id"] == kernel_id] == [session_id]

        reply, out = await execute(stack.ws_url(kernel_id, session_id), "print(sum(range(10)))")
        assert reply["status"] == "ok", reply
        assert out == "45\n"

        renamed = await server.patch(f"/api/sessions/{session_id}", json={"path": "work/renamed.ipynb"})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["path"] == "work/renamed.ipynb"
        assert renamed.json()["kernel"]["id"] == kernel_id

        deleted = await server.delete(f"/api/sessions/{session_id}")
        assert deleted.status_code == 204, deleted.text
        assert kernel_id not in await fastkg_kernel_ids(gateway), (
            "deleting the session left its kernel on fastkg"
        )
        assert await fastkg_kernel_ids(gateway) == before

"""Two fastkg replicas behind nginx (deploy/nginx/fastkg-replicas.conf as shipped), driven by an unchanged
`jupyter server --gateway-url=<nginx>`: each kernel's REST calls and websocket reach the replica owning it."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.blackbox.test_jupyter_server_client import SERVER_TOKEN, execute, wait_for_server
from tests.remote import nginx_proxy
from tests.remote.nginx_proxy import Nginx
from tests.support import ROOT, Gateway, fastkg_process, free_port, stop_process

pytestmark = pytest.mark.timeout(300)

TOKEN = "replica-token"
CONFIG = ROOT / "deploy" / "nginx" / "fastkg-replicas.conf"


@dataclass
class Replicas:
    a: Gateway
    b: Gateway
    proxy: Nginx
    server_url: str

    def owner(self, kernel_id: str) -> Gateway:
        return {"a": self.a, "b": self.b}[kernel_id[0]]


def site_config(a: Gateway, b: Gateway, port: int) -> str:
    text = CONFIG.read_text()
    for name, gateway in (("replica-a:8888", a), ("replica-b:8888", b)):
        assert name in text
        text = text.replace(name, gateway.url.removeprefix("http://"))
    assert "listen 8080;" in text
    return text.replace("listen 8080;", f"listen 127.0.0.1:{port};")


@pytest.fixture(scope="module")
def replicas(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicas]:
    reason = nginx_proxy.unavailable_reason()
    if reason:
        pytest.skip(reason)
    tmp = tmp_path_factory.mktemp("replicas")
    env = {"KG_AUTH_TOKEN": TOKEN, "KG_LIST_KERNELS": "true"}
    with (
        fastkg_process({**env, "FASTKG_KERNEL_ID_PREFIX": "a"}, tmp) as a,
        fastkg_process({**env, "FASTKG_KERNEL_ID_PREFIX": "b"}, tmp) as b,
    ):
        port = free_port()
        with (
            nginx_proxy.nginx(site_config(a, b, port), port, tmp / "nginx") as proxy,
            jupyter_server(proxy.url, tmp) as server_url,
        ):
            yield Replicas(a, b, proxy, server_url)


@contextlib.contextmanager
def jupyter_server(gateway_url: str, tmp: Path) -> Iterator[str]:
    port = free_port()
    (tmp / "root").mkdir(exist_ok=True)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("KG_", "JUPYTER_GATEWAY_", "FASTKG_"))},
        "JUPYTER_CONFIG_DIR": str(tmp / "config"),
        "JUPYTER_RUNTIME_DIR": str(tmp / "runtime"),
    }
    log_path = tmp / "jupyter-server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [
                sys.executable, "-m", "jupyter_server", "--ip=127.0.0.1", f"--port={port}",
                "--port-retries=0", f"--gateway-url={gateway_url}", f"--GatewayClient.auth_token={TOKEN}",
                "--GatewayClient.request_timeout=120", f"--ServerApp.token={SERVER_TOKEN}",
                f"--ServerApp.root_dir={tmp / 'root'}", "--no-browser", "--allow-root",
            ],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp / "root",
        )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_server(url, process, log_path)
        yield url
    finally:
        stop_process(process)


def ws_url(replicas: Replicas, kernel_id: str) -> str:
    base = replicas.server_url.replace("http", "ws", 1)
    return f"{base}/api/kernels/{kernel_id}/channels?session_id={kernel_id}&token={SERVER_TOKEN}"


async def test_kernels_spread_over_both_replicas_and_each_is_served_by_its_owner(replicas: Replicas) -> None:
    headers = {"Authorization": f"token {SERVER_TOKEN}"}
    async with httpx.AsyncClient(base_url=replicas.server_url, headers=headers, timeout=120) as server:
        ids = []
        for _ in range(4):
            response = await server.post("/api/kernels", json={"name": "python3"})
            assert response.status_code == 201, response.text
            ids.append(response.json()["id"])
        assert {kernel_id[0] for kernel_id in ids} == {"a", "b"}  # nginx spread the starts
        for kernel_id in ids:
            listed = (await replicas.owner(kernel_id).client.get("/api/kernels")).json()
            assert kernel_id in {k["id"] for k in listed}  # the prefix names the replica that has it
            reply, stdout = await execute(ws_url(replicas, kernel_id), "print(6 * 7)")
            assert reply["status"] == "ok"
            assert stdout == "42\n"
            assert (await server.post(f"/api/kernels/{kernel_id}/interrupt")).status_code == 204
            restarted = await server.post(f"/api/kernels/{kernel_id}/restart")
            assert restarted.status_code == 200, restarted.text
        # Jupyter Server's list (one replica's list, completed by asking for each kernel by id)
        listed = (await server.get("/api/kernels")).json()
        assert {k["id"] for k in listed} == set(ids)
        for kernel_id in ids:
            assert (await server.delete(f"/api/kernels/{kernel_id}")).status_code == 204
    # every request for a kernel went to its owner, REST and websocket alike
    owners = {"a": replicas.a.url.removeprefix("http://"), "b": replicas.b.url.removeprefix("http://")}
    routed = [entry for entry in replicas.proxy.access_log() if entry[1].startswith("/api/kernels/")]
    assert len(routed) >= 4 * 4
    for _method, path, upstream, _status in routed:
        assert upstream == owners[path.removeprefix("/api/kernels/")[0]], (path, upstream)
    assert any(path.endswith("/channels") for _, path, _, _ in routed)

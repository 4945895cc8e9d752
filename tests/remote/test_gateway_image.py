"""The project's own Dockerfile, built on the debootstrap base and run in the private Docker daemon."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.remote import docker_daemon
from tests.remote.docker_daemon import DockerDaemon
from tests.support import ROOT, Gateway, stdout_of

pytestmark = pytest.mark.timeout(900)

TOKEN = "image-test-token"


@pytest.fixture(scope="module")
def gateway_image(docker: DockerDaemon) -> str:
    base = docker_daemon.python_image(docker)
    tag = "fastkg-test/fastkg:test"
    docker.docker("build", "-q", "--build-arg", f"BASE_IMAGE={base}", "-t", tag, str(ROOT), timeout=1200)
    return tag


@pytest.fixture
def container(docker: DockerDaemon, gateway_image: str) -> Iterator[str]:
    name = f"{docker_daemon.PREFIX}gw-{uuid.uuid4().hex[:8]}"
    docker.docker("run", "-d", "--name", name, "-e", f"KG_AUTH_TOKEN={TOKEN}", gateway_image)
    try:
        yield name
    finally:
        docker.docker("rm", "-f", name, check=False)


def inspect(docker: DockerDaemon, name: str) -> dict[str, object]:
    return dict(json.loads(docker.docker("inspect", name).stdout)[0])


def wait_http(url: str, docker: DockerDaemon, name: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, headers={"Authorization": f"token {TOKEN}"}, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(
        f"the gateway container did not answer: {docker.docker('logs', name).stderr[-3000:]}"
    )


async def test_the_image_is_ready_serves_kernels_as_non_root_and_stops_cleanly(
    docker: DockerDaemon, container: str
) -> None:
    info = inspect(docker, container)
    ip = info["NetworkSettings"]["IPAddress"]  # type: ignore[index]
    assert str(ip).startswith("198.18.2.")
    base = f"http://{ip}:8888"
    wait_http(f"{base}/readyz", docker, container)
    assert httpx.get(f"{base}/livez", timeout=5).status_code == 200  # the probes need no token
    health = json.loads(
        docker.docker("inspect", "--format", "{{json .Config.Healthcheck}}", container).stdout
    )
    assert "/readyz" in " ".join(health["Test"])  # the image's own HEALTHCHECK probes readiness
    # the gateway runs as the image's non-root user, under tini
    top = docker.docker("top", container, "-o", "uid,pid,args").stdout
    gateway_lines = [line for line in top.splitlines() if "fastkg" in line and "tini" not in line]
    assert gateway_lines
    assert all(line.split()[0] == "1000" for line in gateway_lines), top
    async with httpx.AsyncClient(
        base_url=base, headers={"Authorization": f"token {TOKEN}"}, timeout=60
    ) as client:
        gateway = Gateway(base, TOKEN, client)
        kernel_id = await gateway.start_kernel()
        ws = await gateway.connect(kernel_id)
        reply, outputs = await ws.execute("import os; print(os.getuid(), 6 * 7)", 60)
        assert reply["status"] == "ok"
        assert stdout_of(outputs).split() == ["1000", "42"]
        await ws.close()
    started = time.monotonic()
    docker.docker("stop", "--time", "30", container)  # SIGTERM, SIGKILL only after 30 s
    state = inspect(docker, container)["State"]
    assert state["ExitCode"] == 0, docker.docker("logs", container).stderr[-3000:]  # type: ignore[index]
    assert time.monotonic() - started < 25  # it exited on SIGTERM, not on the SIGKILL after 30 s
    logs = docker.docker("logs", container)
    assert "Traceback" not in logs.stdout + logs.stderr

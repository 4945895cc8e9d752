"""Kernels in containers of a private Docker daemon through gateway_provisioners' docker-provisioner."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.remote.docker_daemon import DockerDaemon
from tests.support import Gateway, stdout_of

pytestmark = pytest.mark.timeout(600)

USER = {"KERNEL_USERNAME": "alice"}


async def test_a_container_kernel_executes_and_goes_away(
    docker_gateway: Gateway, docker: DockerDaemon
) -> None:
    response = await docker_gateway.client.post("/api/kernels", json={"env": USER})
    assert response.status_code == 201, docker_gateway.log()[-5000:]
    kernel_id = response.json()["id"]
    containers = docker.containers()
    assert len(containers) == 1
    # the provisioner names the container after the user and the kernel: the API's id is its id
    names = docker.docker("ps", "--format", '{{.Names}} {{.Label "kernel_id"}}').stdout.split()
    assert names == [f"alice-{kernel_id}", kernel_id]
    ws = await docker_gateway.connect(kernel_id)
    reply, outputs = await ws.execute("import os; print(os.getuid(), os.environ['KERNEL_USERNAME'])", 60)
    assert reply["status"] == "ok"
    assert stdout_of(outputs).split() == ["1000", "alice"]  # the image's non-root user, the request's user
    await ws.close()
    assert (await docker_gateway.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204
    deadline = time.monotonic() + 60
    while docker.containers():
        assert time.monotonic() < deadline, "the kernel's container outlived its shutdown"
        await asyncio.sleep(0.5)

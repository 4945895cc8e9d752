"""Kernels on two real SSH hosts through gateway_provisioners' distributed provisioner, driven over fastkg."""

from __future__ import annotations

import asyncio
import os
import time

import pytest

from tests.remote.netns_hosts import SshHost, SshLab
from tests.support import Gateway, KernelSocket, execute_content, stdout_of

pytestmark = pytest.mark.timeout(300)

USER = {"KERNEL_USERNAME": "alice"}  # the provisioner refuses root, the gateway's own user here
WHERE = "import os; print(os.stat('/proc/self/ns/net').st_ino, os.getpid(), os.environ.get('KERNEL_ID'))"


def netns_inode(host: SshHost) -> int:
    return os.stat(f"/run/netns/{host.name}").st_ino


async def where(ws: KernelSocket) -> tuple[int, int, str]:
    """(network namespace inode, pid, KERNEL_ID) of the kernel behind a websocket."""
    reply, outputs = await ws.execute(WHERE, limit=60)
    assert reply["status"] == "ok", reply
    inode, pid, kernel_id = stdout_of(outputs).split()
    return int(inode), int(pid), kernel_id


def host_of(lab: SshLab, inode: int) -> SshHost:
    return next(h for h in lab.hosts if netns_inode(h) == inode)


async def wait_for(predicate: object, limit: float, what: str) -> None:
    deadline = time.monotonic() + limit
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {limit} s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_kernels_alternate_between_the_hosts(ssh_gateway: Gateway, ssh_lab: SshLab) -> None:
    seen = set()
    for _ in range(2):
        kernel_id = await ssh_gateway.start_kernel(env=USER)
        ws = await ssh_gateway.connect(kernel_id)
        inode, pid, _ = await where(ws)
        host = host_of(ssh_lab, inode)
        assert pid in host.kernel_pids()  # the process really lives on that host, not on this machine
        seen.add(host.name)
        await ws.close()
    assert seen == {h.name for h in ssh_lab.hosts}  # round-robin over the kernelspec's remote_hosts


async def test_kernel_remote_host_picks_the_host(ssh_gateway: Gateway, ssh_lab: SshLab) -> None:
    target = ssh_lab.host(1)
    for _ in range(2):
        kernel_id = await ssh_gateway.start_kernel(env={**USER, "KERNEL_REMOTE_HOST": target.ip})
        ws = await ssh_gateway.connect(kernel_id)
        inode, _, _ = await where(ws)
        assert host_of(ssh_lab, inode) is target
        await ws.close()


async def test_interrupt_reaches_the_remote_kernel(ssh_gateway: Gateway) -> None:
    kernel_id = await ssh_gateway.start_kernel(env=USER)
    ws = await ssh_gateway.connect(kernel_id)
    msg_id = await ws.send("execute_request", execute_content("import time; time.sleep(120)"))
    await ws.until(lambda m: m.msg_type == "status" and m.content["execution_state"] == "busy", 30)
    response = await ssh_gateway.client.post(f"/api/kernels/{kernel_id}/interrupt")
    assert response.status_code == 204
    reply = await ws.until(lambda m: m.msg_type == "execute_reply" and m.parent_id == msg_id, 60)
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "KeyboardInterrupt"
    await ws.close()


async def test_shutdown_stops_the_remote_process(ssh_gateway: Gateway, ssh_lab: SshLab) -> None:
    kernel_id = await ssh_gateway.start_kernel(env=USER)
    ws = await ssh_gateway.connect(kernel_id)
    inode, pid, _ = await where(ws)
    host = host_of(ssh_lab, inode)
    await ws.close()
    response = await ssh_gateway.client.delete(f"/api/kernels/{kernel_id}")
    assert response.status_code == 204
    await wait_for(lambda: pid not in host.kernel_pids(), 60, f"kernel process {pid} on {host.name} to exit")
    assert (await ssh_gateway.client.get(f"/api/kernels/{kernel_id}")).status_code == 404

"""A remote kernel's life through fastkg: its id, restarts that move it, deaths, a cut link, shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import pytest

from tests.remote.netns_hosts import SshLab
from tests.remote.test_ssh_kernels import USER, host_of, wait_for, where
from tests.support import Gateway, KernelSocket, Received, execute_content

pytestmark = pytest.mark.timeout(300)


def status(state: str):  # type: ignore[no-untyped-def]
    return lambda m: m.channel == "iopub" and m.msg_type == "status" and m.content["execution_state"] == state


async def restarting_then_idle(ws: KernelSocket, limit: float = 90) -> list[Received]:
    """Every message up to the first idle after a restarting status (which must come first)."""
    seen = [await ws.until(status("restarting"), limit)]
    seen.append(await ws.until(status("idle"), limit))
    return seen


async def test_the_api_id_is_the_provisioners_kernel_id(ssh_gateway: Gateway) -> None:
    kernel_id = await ssh_gateway.start_kernel(env=USER)
    ws = await ssh_gateway.connect(kernel_id)
    _, _, remote_id = await where(ws)
    assert remote_id == kernel_id  # KERNEL_ID on the host, the log file name, the API: one id
    assert f"Kernel ID: {kernel_id}" in ssh_gateway.log()
    await ws.close()


async def test_a_rest_restart_follows_the_kernel_to_its_new_host(
    ssh_gateway: Gateway, ssh_lab: SshLab
) -> None:
    kernel_id = await ssh_gateway.start_kernel(env=USER)
    ws = await ssh_gateway.connect(kernel_id)
    inode, pid, _ = await where(ws)
    before = host_of(ssh_lab, inode)
    response = await ssh_gateway.client.post(f"/api/kernels/{kernel_id}/restart")
    assert response.status_code == 200, response.text
    assert response.json()["execution_state"] == "idle"
    await restarting_then_idle(ws)
    # round-robin placed the new process on the other host: a new address, and the same websocket works
    inode, new_pid, remote_id = await where(ws)
    assert host_of(ssh_lab, inode) is not before
    assert remote_id == kernel_id
    await wait_for(lambda: pid not in before.kernel_pids(), 60, "the old kernel process to exit")
    assert new_pid != pid
    await ws.close()


async def test_a_killed_remote_kernel_comes_back_and_clients_follow(
    ssh_gateway: Gateway, ssh_lab: SshLab
) -> None:
    kernel_id = await ssh_gateway.start_kernel(env=USER)
    ws = await ssh_gateway.connect(kernel_id)
    other = await ssh_gateway.connect(kernel_id)
    _, pid, _ = await where(ws)
    os.kill(pid, signal.SIGKILL)  # the kernel process on the host, not the gateway's business
    try:
        for client in (ws, other):
            await restarting_then_idle(client)
    except TimeoutError:
        raise AssertionError(ssh_gateway.log()[-6000:]) from None
    model = (await ssh_gateway.client.get(f"/api/kernels/{kernel_id}")).json()
    assert model["execution_state"] == "idle"
    _, new_pid, remote_id = await where(other)
    assert new_pid != pid
    assert remote_id == kernel_id
    await where(ws)
    for client in (ws, other):
        await client.close()


async def test_a_cut_link_mid_execution_is_a_clear_error_not_a_hang(
    ssh_gateway: Gateway, ssh_lab: SshLab
) -> None:
    host = ssh_lab.host(1)
    kernel_id = await ssh_gateway.start_kernel(env={**USER, "KERNEL_REMOTE_HOST": host.ip})
    ws = await ssh_gateway.connect(kernel_id)
    msg_id = await ws.send("execute_request", execute_content("import time; time.sleep(600)"))
    await ws.until(lambda m: m.msg_type == "status" and m.content["execution_state"] == "busy", 30)
    host.cut()
    try:
        started = time.monotonic()
        reply = await ws.until(lambda m: m.msg_type == "execute_reply" and m.parent_id == msg_id, 90)
        assert reply.content["status"] == "error"
        assert reply.content["ename"] == "KernelDied"
        assert time.monotonic() - started < 90
        # the gateway itself stays responsive while it deals with the lost host
        async with asyncio.timeout(10):
            response = await ssh_gateway.client.get(f"/api/kernels/{kernel_id}")
        assert response.status_code in (200, 404)
    finally:
        host.restore()
    async with asyncio.timeout(120):
        response = await ssh_gateway.client.delete(f"/api/kernels/{kernel_id}")
    assert response.status_code in (204, 404)
    await ws.close()


async def test_shutdown_stops_the_kernel_and_its_listener(ssh_gateway: Gateway, ssh_lab: SshLab) -> None:
    before = {pid for host in ssh_lab.hosts for pid in host.kernel_pids()}
    kernel_id = await ssh_gateway.start_kernel(env=USER)
    ws = await ssh_gateway.connect(kernel_id)
    inode, pid, _ = await where(ws)
    host = host_of(ssh_lab, inode)
    mine = set(host.kernel_pids()) - before
    assert pid in mine
    assert len(mine) >= 2  # the kernel and gateway_provisioners' listener beside it
    await ws.close()
    assert (await ssh_gateway.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204
    # The provisioner confirms once its listener is gone; the kernel process follows within moments.
    await wait_for(lambda: not mine & set(host.kernel_pids()), 30, f"kernel {kernel_id}'s processes to exit")
    assert "does not confirm" not in ssh_gateway.log()

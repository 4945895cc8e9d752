#!/usr/bin/env python3
"""Remote kernels against local ones: start -> usable, and execute round trips, through fastkg and direct.

  .venv/bin/python bench/remote.py [--starts 5] [--executes 200]

As root, on the test hosts of tests/remote (SSH hosts in network namespaces, the private Docker daemon;
`make remote-hosts` first). For each kind of kernel (local ipykernel, `ssh_python` on a namespace host,
`docker_python` in a container) it measures

  start   POST /api/kernels until 201 (fastkg answers once the kernel replied to kernel_info)
  exec    p50/p90 of a trivial execute_request over fastkg's websocket, up to the idle status
  direct  the same execute through jupyter_client straight to the kernel's ZMQ sockets (a kernel of the
          same kind started by this process with the same provisioner), so that
          (exec - direct) is the gateway's part: it should not grow for remote kernels.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.remote import docker_daemon, netns_hosts  # noqa: E402
from tests.remote.conftest import TOKEN, install_spec, install_ssh_spec  # noqa: E402
from tests.support import execute_content, fastkg_process, free_port  # noqa: E402


def pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def through_gateway(env, tmp, name, starts, executes, kernel_env):
    with fastkg_process({**env, "KG_AUTH_TOKEN": TOKEN, "KG_DEFAULT_KERNEL_NAME": name}, tmp) as gw:
        start_times = []
        ids = []
        for _ in range(starts):
            t = time.perf_counter()
            response = await gw.client.post("/api/kernels", json={"env": kernel_env})
            assert response.status_code == 201, response.text
            start_times.append(time.perf_counter() - t)
            ids.append(response.json()["id"])
        ws = await gw.connect(ids[0])
        for _ in range(10):
            await ws.execute("1", 60)
        rtts = []
        for _ in range(executes):
            t = time.perf_counter()
            await ws.execute("1", 60)
            rtts.append(time.perf_counter() - t)
        await ws.close()
        for kid in ids:
            await gw.client.delete(f"/api/kernels/{kid}")
    return start_times, rtts


async def direct(env, name, executes):
    """The same kind of kernel, started by jupyter_client in this process, driven by its own client."""
    os.environ.update(env)
    from jupyter_client.manager import AsyncKernelManager

    km = AsyncKernelManager(kernel_name=name)
    await km.start_kernel(env={**os.environ, "KERNEL_USERNAME": "bench"})
    client = km.client()
    client.start_channels()
    await client.wait_for_ready(timeout=60)

    async def once():
        msg_id = client.execute("1")
        while True:
            msg = await client.get_iopub_msg(timeout=60)
            if (
                msg["parent_header"].get("msg_id") == msg_id
                and msg["msg_type"] == "status"
                and msg["content"]["execution_state"] == "idle"
            ):
                return

    try:
        for _ in range(10):
            await once()
        rtts = []
        for _ in range(executes):
            t = time.perf_counter()
            await once()
            rtts.append(time.perf_counter() - t)
    finally:
        client.stop_channels()
        await km.shutdown_kernel(now=False)
    return rtts


def summary(label, starts, rtts, direct_rtts):
    row = {
        "kind": label,
        "start_p50_s": round(statistics.median(starts), 3),
        "exec_p50_ms": round(1000 * statistics.median(rtts), 2),
        "exec_p90_ms": round(1000 * pct(rtts, 0.9), 2),
        "direct_p50_ms": round(1000 * statistics.median(direct_rtts), 2),
    }
    row["gateway_part_ms"] = round(row["exec_p50_ms"] - row["direct_p50_ms"], 2)
    return row


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--starts", type=int, default=5)
    parser.add_argument("--executes", type=int, default=200)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="fastkg-bench-remote-"))
    rows = []
    user = {"KERNEL_USERNAME": "bench"}

    starts, rtts = await through_gateway({}, tmp, "python3", args.starts, args.executes, user)
    rows.append(summary("local ipykernel", starts, rtts, await direct({}, "python3", args.executes)))

    # Containers reach 198.18.0.1 through their default route to this machine, the SSH hosts over their
    # bridge: one response address serves both (this process's response manager is a singleton).
    with netns_hosts.ssh_lab(2) as lab, docker_daemon.docker_daemon() as daemon:
        specs = install_ssh_spec(tmp / "specs", [h.ip for h in lab.hosts])
        image = docker_daemon.kernel_image(daemon)
        install_spec("jupyter-docker-spec", tmp / "specs", "docker_python", f"--image-name={image}")
        base = {
            **lab.env(),
            "JUPYTER_PATH": str(specs),
            "DOCKER_HOST": daemon.host,
            "KG_ENV_PROCESS_WHITELIST": "DOCKER_HOST",
        }
        direct_env = {**base, "GP_RESPONSE_PORT": str(free_port())}
        for label, name in (("SSH host (netns)", "ssh_python"), ("Docker container", "docker_python")):
            env = {**base, "GP_RESPONSE_PORT": str(free_port())}
            starts, rtts = await through_gateway(env, tmp, name, args.starts, args.executes, user)
            rows.append(summary(label, starts, rtts, await direct(direct_env, name, args.executes)))
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    asyncio.run(main())

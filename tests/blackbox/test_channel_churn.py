"""Black-box connection churn on the real `fastkg` process: thousands of websocket connect/disconnect
cycles on one kernel leave the gateway's and the kernel's file descriptors and the gateway's memory flat.

Browsers open a new `session_id` on every page load and some clients send none, so a detached session
must not outlive its use: unnamed ones close at once, named ones are capped per kernel.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.blackbox.test_lifecycle import gateway_pid, kernel_pid
from tests.processes import fd_count
from tests.support import Gateway, fastkg_process, new_message

TOKEN = "churn-token-7"
CYCLES = 2000  # per kind of client
FD_SLACK = 6
RSS_SLACK_MB = 25.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


async def settle(pid: int, limit: int, seconds: float = 20) -> int:
    """Wait until `pid` holds at most `limit` fds (zmq closes sockets in its I/O thread); the last count."""
    deadline = time.monotonic() + seconds
    count = fd_count(pid)
    while count > limit and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        count = fd_count(pid)
    return count


async def churn(gw: Gateway, kernel_id: str, session_ids: list[str]) -> None:
    """Per session id ("" sends none): connect, ask for kernel_info as JupyterLab does, disconnect."""
    for session_id in session_ids:
        async with connect(gw.ws_url(kernel_id, session_id), open_timeout=30, proxy=None) as ws:
            request = new_message("kernel_info_request", {}, session_id or "anonymous")
            await ws.send(json.dumps(request))
            async with asyncio.timeout(30):
                while True:
                    reply = json.loads(await ws.recv())
                    if reply["channel"] == "shell":
                        break
            assert reply["msg_type"] == "kernel_info_reply"
            assert reply["parent_header"]["msg_id"] == request["header"]["msg_id"]


@pytest.mark.timeout(420)
async def test_connect_disconnect_churn_leaves_fds_and_memory_flat(tmp_path: Path) -> None:
    # default replay settings: that is where the leak was
    with fastkg_process({"KG_AUTH_TOKEN": TOKEN}, tmp_path) as gw:
        pid = gateway_pid(gw)
        kernel_id = await gw.start_kernel()
        probe = await gw.connect(kernel_id, session_id="probe")
        kpid = await kernel_pid(probe)
        await probe.close()
        await churn(gw, kernel_id, ["", "warm-up", uuid.uuid4().hex] * 5)
        await asyncio.sleep(0.5)
        base = {"gateway": fd_count(pid), "kernel": fd_count(kpid)}
        base_rss = rss_mb(pid)

        kinds = {
            "no session_id": [""] * CYCLES,
            "a new session_id each time": [uuid.uuid4().hex for _ in range(CYCLES)],
            "one session_id resumed": ["resumed"] * CYCLES,
        }
        report = []
        for kind, ids in kinds.items():
            started = time.monotonic()
            await churn(gw, kernel_id, ids)
            elapsed = time.monotonic() - started
            after = {
                name: await settle(p, base[name] + FD_SLACK)
                for name, p in (("gateway", pid), ("kernel", kpid))
            }
            report.append(f"{kind}: {CYCLES} cycles in {elapsed:.1f} s, fds {base} -> {after}")
            for name in base:
                assert after[name] <= base[name] + FD_SLACK, "; ".join(report)
        grown = rss_mb(pid) - base_rss
        print("\n".join(report), f"\ngateway memory grew {grown:.1f} MB")
        assert grown < RSS_SLACK_MB, f"gateway memory grew {grown:.1f} MB over {3 * CYCLES} cycles"

        model = (await gw.client.get(f"/api/kernels/{kernel_id}")).json()
        assert model["connections"] == 0, model
        ws = await gw.connect(kernel_id)
        reply, _ = await ws.execute("1 + 1")
        assert reply["status"] == "ok"
        await ws.close()
        await gw.client.aclose()

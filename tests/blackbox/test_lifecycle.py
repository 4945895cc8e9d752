"""Black-box lifecycle of the real `fastkg` process: SIGTERM, crashes, and leaks over many connections."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.processes import alive, children, fd_count, kill_leftovers, wait_gone
from tests.support import Gateway, KernelSocket, execute_content, fastkg_process, stdout_of

TOKEN = "lifecycle-token-42"


async def kernel_pid(ws: KernelSocket, prelude: str = "") -> int:
    reply, outputs = await ws.execute(prelude + "import os; print(os.getpid())", limit=60)
    assert reply["status"] == "ok", reply
    return int(stdout_of(outputs))


def gateway_pid(gw: Gateway) -> int:
    assert gw.process is not None
    return gw.process.pid


# -- SIGTERM ---------------------------------------------------------------------------------------------
async def test_sigterm_closes_sockets_reaps_kernels_and_exits_zero(tmp_path: Path) -> None:
    env = {"KG_AUTH_TOKEN": TOKEN, "KG_LIST_KERNELS": "True"}
    pids: set[int] = set()
    try:
        with fastkg_process(env, tmp_path) as gw:
            assert gw.process is not None
            polite = await gw.start_kernel()
            stubborn = await gw.start_kernel()
            ws = await gw.connect(polite)
            pids.add(await kernel_pid(ws))
            ws_stubborn = await gw.connect(stubborn, v1=True)
            ignore = (
                "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "signal.signal(signal.SIGINT, signal.SIG_IGN); "  # no interrupting it either
            )
            stubborn_pid = await kernel_pid(ws_stubborn, ignore)
            pids.add(stubborn_pid)
            assert pids == children(gateway_pid(gw)), "the kernels should be the gateway's only children"

            # The stubborn kernel really ignores SIGTERM ...
            os.kill(stubborn_pid, signal.SIGTERM)
            await asyncio.sleep(0.5)
            assert alive(stubborn_pid)
            # ... and is stuck holding the GIL in C, so it cannot answer a shutdown request either.
            stuck = "import time; time.sleep(0.5); sum(range(10**14))"  # the sleep lets 'busy' out first
            await ws_stubborn.send("execute_request", execute_content(stuck))
            await ws_stubborn.until(
                lambda m: m.msg_type == "status" and m.content["execution_state"] == "busy"
            )
            await asyncio.sleep(1)
            await ws_stubborn.close()

            started = time.monotonic()
            gw.process.send_signal(signal.SIGTERM)
            # The server closes the open websocket (a close frame, not a dropped connection) first.
            close: ConnectionClosed | None = None
            try:
                async with asyncio.timeout(10):
                    while True:
                        await ws.ws.recv()
            except ConnectionClosed as exc:
                close = exc
            assert close is not None, "the websocket stayed open after SIGTERM"
            assert close.rcvd is not None, "no close frame from the server"
            assert close.rcvd.code in (1001, 1012), close.rcvd
            assert time.monotonic() - started < 5
            returncode = await asyncio.to_thread(gw.process.wait, 15)
            elapsed = time.monotonic() - started
            log = gw.log()
            assert returncode == 0, f"exit status {returncode}:\n{log[-3000:]}"
            assert elapsed < 10, f"took {elapsed:.1f}s to stop"
            remaining = wait_gone(pids, 1.0)
            assert not remaining, f"kernels outlived the gateway: {remaining}\n{log[-3000:]}"
            # Kernels share the log (their stderr); the gateway's own records start with "[X date".
            gateway_errors = [line for line in log.splitlines() if line.startswith(("[E ", "[C "))]
            assert not gateway_errors, "\n".join(gateway_errors)
            print(f"SIGTERM to exit: {elapsed:.1f}s")
    finally:
        kill_leftovers(pids)


# -- crash -----------------------------------------------------------------------------------------------
async def test_kernels_exit_after_gateway_is_killed(tmp_path: Path) -> None:
    pids: set[int] = set()
    try:
        with fastkg_process({"KG_AUTH_TOKEN": TOKEN}, tmp_path) as gw:
            assert gw.process is not None
            inherited = await gw.start_kernel()
            restricted = await gw.start_kernel(env={"KERNEL_WORKER": "1"})  # KG's restricted environment
            for kernel_id in (inherited, restricted):
                ws = await gw.connect(kernel_id)
                pids.add(await kernel_pid(ws))
                await ws.close()
            assert pids <= children(gateway_pid(gw))
            gw.process.kill()
            await asyncio.to_thread(gw.process.wait, 10)
            started = time.monotonic()
            remaining = await asyncio.to_thread(wait_gone, pids, 12.0)
            assert not remaining, f"kernels {remaining} still alive 12 s after the gateway was killed"
            assert time.monotonic() - started < 12
    finally:
        kill_leftovers(pids)


# -- leaks -----------------------------------------------------------------------------------------------
CYCLES = 300


async def test_no_fd_or_kernel_leak_over_many_connections(tmp_path: Path) -> None:
    env = {"KG_AUTH_TOKEN": TOKEN, "KG_LIST_KERNELS": "True"}  # default replay: short expiries hide leaks
    with fastkg_process(env, tmp_path) as gw:
        pid = gateway_pid(gw)
        kernel_id = await gw.start_kernel()

        async def cycle(i: int) -> None:
            ws = await gw.connect(kernel_id, v1=bool(i % 2))
            reply, outputs = await ws.execute(f"print({i})")
            assert reply["status"] == "ok"
            assert stdout_of(outputs) == f"{i}\n"
            await ws.close()

        for i in range(5):  # warm up lazily created sockets and caches
            await cycle(i)
        async with asyncio.timeout(10):
            while (await gw.client.get(f"/api/kernels/{kernel_id}")).json()["connections"]:
                await asyncio.sleep(0.05)
        baseline = fd_count(pid)
        kernel_processes = children(pid)
        assert len(kernel_processes) == 1

        started = time.monotonic()
        for i in range(CYCLES):
            await cycle(i)
        elapsed = time.monotonic() - started
        # Refused upgrades and 401s release their sockets too.
        async with httpx.AsyncClient(base_url=gw.url, timeout=30) as anonymous:
            for _ in range(50):
                with pytest.raises(InvalidStatus) as refusal:
                    async with connect(gw.ws_url(kernel_id, token=False), open_timeout=10):
                        pass
                assert refusal.value.response.status_code == 401
                assert (await anonymous.get("/api/kernels")).status_code == 401
        peak = fd_count(pid)

        deadline = time.monotonic() + 10
        while fd_count(pid) > baseline + 3 and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        after = fd_count(pid)
        assert after <= baseline + 3, f"fds: baseline {baseline}, peak {peak}, after {after}"
        assert children(pid) == kernel_processes, "extra processes appeared"

        model = (await gw.client.get(f"/api/kernels/{kernel_id}")).json()
        assert model["connections"] == 0, model
        assert len((await gw.client.get("/api/kernels")).json()) == 1
        # Still healthy afterwards.
        ws = await gw.connect(kernel_id)
        reply, _ = await ws.execute("1 + 1")
        assert reply["status"] == "ok"
        await ws.close()
        print(f"{CYCLES} cycles in {elapsed:.1f}s; fds baseline {baseline}, peak {peak}, after {after}")

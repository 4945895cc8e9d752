"""Starts under pressure in the real `fastkg` process: 32 at once, and a SIGTERM while one is in flight."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
import nbformat
import pytest

from tests.processes import children, kill_leftovers, wait_gone
from tests.support import fastkg_process, stdout_of

TOKEN = "concurrent-token-7"
KERNELS = 32


@pytest.mark.timeout(600)
async def test_32_concurrent_starts_all_succeed_and_execute(tmp_path: Path) -> None:
    env = {"KG_AUTH_TOKEN": TOKEN, "KG_LIST_KERNELS": "True", "FASTKG_KERNEL_START_TIMEOUT": "300"}
    pids: set[int] = set()
    with fastkg_process(env, tmp_path) as gw:
        assert gw.process is not None
        try:
            answers = await asyncio.gather(
                *(gw.client.post("/api/kernels", json={}, timeout=400) for _ in range(KERNELS))
            )
            failed = [r.text for r in answers if r.status_code != 201]
            assert not failed, f"{failed}\n{gw.log()[-6000:]}"
            ids = [r.json()["id"] for r in answers]
            assert len(set(ids)) == KERNELS
            pids = children(gw.process.pid)
            assert len(pids) == KERNELS, f"{len(pids)} kernel processes for {KERNELS} kernels"

            async def run(index: int, kernel_id: str) -> None:
                ws = await gw.connect(kernel_id)
                try:
                    reply, outputs = await ws.execute(f"print({index} * 2)", limit=180)
                finally:
                    await ws.close()
                assert reply["status"] == "ok", reply
                assert stdout_of(outputs) == f"{index * 2}\n"

            await asyncio.gather(*(run(i, kernel_id) for i, kernel_id in enumerate(ids)))
            listed = (await gw.client.get("/api/kernels")).json()
            assert sorted(k["id"] for k in listed) == sorted(ids)
            deletes = await asyncio.gather(*(gw.client.delete(f"/api/kernels/{k}", timeout=120) for k in ids))
            assert [r.status_code for r in deletes] == [204] * KERNELS
            assert not await asyncio.to_thread(wait_gone, pids, 30)
        finally:
            kill_leftovers(pids)


@pytest.mark.timeout(180)
async def test_sigterm_during_a_start_leaves_no_kernel_behind(tmp_path: Path) -> None:
    """uvicorn cancels the start request after its grace period; the gateway still reaps the kernel."""
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("import time; time.sleep(120)")])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    seed = tmp_path / "slow_seed.ipynb"
    nbformat.write(notebook, seed)
    env = {"KG_AUTH_TOKEN": TOKEN, "KG_SEED_URI": str(seed)}
    pids: set[int] = set()
    with fastkg_process(env, tmp_path) as gw:
        assert gw.process is not None
        try:
            start = asyncio.create_task(gw.client.post("/api/kernels", json={}, timeout=120))
            async with asyncio.timeout(90):  # the kernel exists and is being seeded
                while not (pids := children(gw.process.pid)):
                    await asyncio.sleep(0.05)
            assert not start.done()
            started = time.monotonic()
            gw.process.send_signal(signal.SIGTERM)
            returncode = await asyncio.to_thread(gw.process.wait, 60)
            elapsed = time.monotonic() - started
            log = gw.log()
            assert returncode == 0, log[-3000:]
            assert elapsed < 30, f"took {elapsed:.1f}s to stop"
            # The kernel is gone when the gateway has exited: reaped, not orphaned to its parent poller.
            leftover = await asyncio.to_thread(wait_gone, pids, 1.0)
            assert not leftover, f"kernel {leftover} outlived the gateway:\n{log[-3000:]}"
            # No kernel was handed out: uvicorn answers 500 for the request it cancels after its grace
            # period (or the connection just closes).
            try:
                response: httpx.Response | None = await start
            except httpx.HTTPError:
                response = None
            assert response is None or response.status_code in (500, 503), response.text
            assert "Cancel 1 running task(s)" in log, "the start should have outlasted uvicorn's grace period"
            gateway_errors = [line for line in log.splitlines() if line.startswith("[C ")]
            assert not gateway_errors, "\n".join(gateway_errors)
        finally:
            kill_leftovers(pids)

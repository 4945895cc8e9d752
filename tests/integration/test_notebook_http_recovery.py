"""notebook-http under load and failure: the kernel pool (FIFO, per-kernel state, waiting), timeouts, dying
kernels, disconnecting clients and the request body limit, on one 2-kernel pool shared by the module.

Tests that break kernels leave the pool refilling; every test first waits until both kernels are idle.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import nbformat
import pytest
import pytest_asyncio
from nbformat.v4 import new_code_cell, new_notebook

from tests.support import Gateway, serve

pytestmark = pytest.mark.asyncio(loop_scope="module")

POOL = 2
TIMEOUT = 2.0
BODY_LIMIT = 1024

CELLS = [
    "import json, os, time\nSTARTED = 'seeded'\nCOUNT = 0",
    "# GET /quick\nprint(json.dumps({'pid': os.getpid(), 'started': STARTED}))",
    "# GET /n\nn = json.loads(REQUEST)['args']['n'][0]\ntime.sleep(0.01)\nprint(n)",
    "# GET /counter\nCOUNT += 1\nprint(json.dumps({'pid': os.getpid(), 'count': COUNT}))",
    "# GET /slow\ntime.sleep(1)\nprint('slept')",
    "# GET /sleep\ntime.sleep(30)\nprint('woke up')",
    "# GET /die\nos._exit(1)",
    "# POST /size\nprint(len(json.loads(REQUEST)['body']))",
    "# GET /hold\ntime.sleep(1.5)\nprint('held')",
    "# ResponseInfo GET /hold\ntime.sleep(1.5)\nprint(json.dumps({'status': 200}))",
]


def write_notebook(path: Path, cells: list[str]) -> Path:
    notebook = new_notebook(cells=[new_code_cell(cell) for cell in cells])
    notebook.metadata = {
        "kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"},
        "language_info": {"name": "python"},
    }
    nbformat.write(notebook, str(path))
    return path


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def pool_api(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Gateway]:
    notebook = write_notebook(tmp_path_factory.mktemp("recovery") / "nb_recovery.ipynb", CELLS)
    async with serve(
        api=["notebook-http"],
        seed_uri=str(notebook),
        prespawn_count=POOL,
        request_timeout=TIMEOUT,
        max_request_body=BODY_LIMIT,
    ) as gw:
        yield gw


@pytest_asyncio.fixture(loop_scope="module")
async def gw(pool_api: Gateway) -> Gateway:
    """The shared gateway once its pool is whole again (earlier tests may have broken kernels)."""
    await settled(pool_api)
    return pool_api


def idle(gw: Gateway) -> int:
    return int(gw.app.state.notebook.pool.idle)


async def settled(gw: Gateway, limit: float = 30) -> None:
    async with asyncio.timeout(limit):
        while idle(gw) != POOL:
            await asyncio.sleep(0.05)


async def quick(gw: Gateway) -> dict[str, Any]:
    response = await gw.client.get("/quick")
    assert response.status_code == 200, response.text
    value: dict[str, Any] = response.json()
    return value


async def pool_pids(gw: Gateway) -> set[int]:
    """The pids of the pool's kernels: POOL sequential requests visit each kernel once (FIFO)."""
    return {(await quick(gw))["pid"] for _ in range(POOL)}


# -- the pool --------------------------------------------------------------------------------------
async def test_concurrent_responses_never_mix(gw: Gateway) -> None:
    responses = await asyncio.gather(*(gw.client.get("/n", params={"n": str(i)}) for i in range(40)))
    assert [r.status_code for r in responses] == [200] * 40
    assert [r.text for r in responses] == [f"{i}\n" for i in range(40)]
    assert idle(gw) == POOL


async def test_state_is_per_kernel_and_sequential_requests_rotate(gw: Gateway) -> None:
    seen = [(await gw.client.get("/counter")).json() for _ in range(6)]
    pids = [entry["pid"] for entry in seen]
    assert len(set(pids)) == POOL, f"expected {POOL} kernels: {seen}"
    assert all(pids[i] != pids[i + 1] for i in range(5)), f"FIFO should alternate kernels: {pids}"
    for pid in set(pids):
        counts = [entry["count"] for entry in seen if entry["pid"] == pid]
        # Each kernel counts only its own requests: +1 per visit, whatever earlier tests did.
        assert counts == list(range(counts[0], counts[0] + len(counts))), seen


async def test_requests_beyond_the_pool_wait(gw: Gateway) -> None:
    started = time.monotonic()
    responses = await asyncio.gather(*(gw.client.get("/slow") for _ in range(2 * POOL)))
    elapsed = time.monotonic() - started
    assert [r.text for r in responses] == ["slept\n"] * (2 * POOL)
    # Two rounds of 1 s on two kernels: about 2 s, never 1 s (no extra kernels) nor 4 s (no parallelism).
    assert 1.9 <= elapsed < 3.9, f"{2 * POOL} one-second requests on {POOL} kernels took {elapsed:.2f}s"


async def test_waiting_for_a_kernel_is_bounded_by_the_request_timeout(gw: Gateway) -> None:
    """Both kernels held 3 s (two 1.5 s executions, each within TIMEOUT): a request that would wait
    beyond TIMEOUT for a kernel gets a 503 instead, and the holders finish normally."""
    before = await pool_pids(gw)
    holders = [asyncio.create_task(gw.client.get("/hold")) for _ in range(POOL)]
    async with asyncio.timeout(1):
        while idle(gw):  # both kernels lent
            await asyncio.sleep(0.01)
    started = time.monotonic()
    waiters = await asyncio.gather(*(gw.client.get("/quick") for _ in range(POOL)))
    waited = time.monotonic() - started
    for response in waiters:
        assert response.status_code == 503, response.text
        assert response.json()["reason"] == "Service Unavailable"
        assert "No kernel became free" in response.json()["message"]
    assert TIMEOUT - 0.1 <= waited < TIMEOUT + 1, f"gave up after {waited:.2f}s"
    assert [(await h).text for h in holders] == ["held\n"] * POOL
    await settled(gw, limit=10)
    assert await pool_pids(gw) == before, "waiting requests gave up; no kernel should have been replaced"


# -- failures --------------------------------------------------------------------------------------
async def test_timeout_is_504_and_the_interrupted_kernel_keeps_serving(gw: Gateway) -> None:
    before = await pool_pids(gw)
    started = time.monotonic()
    response = await gw.client.get("/sleep")
    elapsed = time.monotonic() - started
    assert response.status_code == 504, response.text
    assert response.json()["reason"] == "Gateway Timeout"
    assert elapsed < 5, f"504 after {elapsed:.1f}s"
    for _ in range(2 * POOL):
        assert (await gw.client.get("/n", params={"n": "7"})).text == "7\n"
    await settled(gw, limit=10)
    # The interrupt brought the kernel back: the same two kernels serve, none was replaced.
    assert await pool_pids(gw) == before


async def test_dead_kernel_is_503_and_replaced_with_startup_cells_rerun(gw: Gateway) -> None:
    before = await pool_pids(gw)
    started = time.monotonic()
    response = await gw.client.get("/die")
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.text
    assert response.json()["reason"] == "Service Unavailable"
    assert elapsed < 10, f"503 after {elapsed:.1f}s"
    # Requests keep succeeding while the pool refills (they use the surviving kernel meanwhile).
    for _ in range(3):
        assert (await quick(gw))["started"] == "seeded"
    await settled(gw)
    after = [await quick(gw) for _ in range(POOL)]
    assert {entry["started"] for entry in after} == {"seeded"}, "the replacement kernel was not seeded"
    pids = {entry["pid"] for entry in after}
    assert len(pids) == POOL
    assert len(pids & before) == POOL - 1, f"exactly one kernel should be new: {before} -> {pids}"


async def test_disconnecting_clients_do_not_leak_kernels(gw: Gateway) -> None:
    async with httpx.AsyncClient(base_url=gw.url, timeout=0.3) as impatient:
        results = await asyncio.gather(*(impatient.get("/slow") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, httpx.TimeoutException) for r in results), results
    responses = await asyncio.gather(*(gw.client.get("/n", params={"n": str(i)}) for i in range(6)))
    assert [r.text for r in responses] == [f"{i}\n" for i in range(6)]
    await settled(gw, limit=10)
    assert idle(gw) == POOL
    assert len(await pool_pids(gw)) == POOL


async def test_body_over_the_limit_is_413(gw: Gateway) -> None:
    small = await gw.client.post("/size", json="x" * 100)
    assert small.text == "100\n"
    declared = await gw.client.post("/size", json="x" * (2 * BODY_LIMIT))
    assert declared.status_code == 413
    assert declared.json()["reason"] == "Request Entity Too Large"

    async def chunks() -> AsyncIterator[bytes]:
        yield b'"'
        for _ in range(4):
            yield b"y" * 512
        yield b'"'

    streamed = await gw.client.post("/size", content=chunks(), headers={"Content-Type": "application/json"})
    assert streamed.status_code == 413
    assert streamed.headers["content-type"] == "application/json"
    assert idle(gw) == POOL
    assert json.loads((await gw.client.post("/size", json="z")).text) == 1

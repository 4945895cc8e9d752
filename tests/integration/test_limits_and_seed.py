"""KG_MAX_KERNELS under concurrency, seed notebooks, prespawned kernels and fastkg's warm pool."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx

from tests.integration.test_kernels_rest import assert_error, listed
from tests.support import NOTEBOOKS, Gateway, serve, stdout_of

SEED = NOTEBOOKS / "rest_seed.ipynb"
FAILING_SEED = NOTEBOOKS / "rest_seed_failing.ipynb"


def child_pids() -> set[str]:
    """Child processes of this (test) process."""
    children: set[str] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            children.update((task / "children").read_text().split())
    return children


class Processes:
    """Counts the kernel processes started since it was made (the in-process gateway's kernels)."""

    def __init__(self) -> None:
        self.before = child_pids()

    def count(self) -> int:
        return len(child_pids() - self.before)


async def run(gw: Gateway, kernel_id: str, code: str) -> str:
    ws = await gw.connect(kernel_id)
    reply, outputs = await ws.execute(code)
    await ws.close()
    assert reply["status"] == "ok", reply
    return stdout_of(outputs)


class Watcher:
    """Polls the kernel listing (and the kernel processes) while something else runs."""

    def __init__(self, gw: Gateway, processes: Processes) -> None:
        self.gw = gw
        self.processes = processes
        self.max_listed = 0
        self.max_processes = 0
        self.polls = 0

    async def watch(self) -> None:
        while True:
            response = await self.gw.client.get("/api/kernels")
            assert response.status_code == 200, response.text  # listing never fails mid-start
            self.max_listed = max(self.max_listed, len(response.json()))
            self.max_processes = max(self.max_processes, self.processes.count())
            self.polls += 1
            await asyncio.sleep(0.01)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Watcher]:
        task = asyncio.create_task(self.watch())
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def settle(predicate: Callable[[], bool], limit: float = 30) -> None:
    async with asyncio.timeout(limit):
        while not predicate():
            await asyncio.sleep(0.05)


async def concurrent_posts(gw: Gateway, count: int) -> list[httpx.Response]:
    return list(await asyncio.gather(*(gw.client.post("/api/kernels", json={}) for _ in range(count))))


async def test_max_kernels_under_concurrent_posts() -> None:
    processes = Processes()
    async with serve(max_kernels=2, list_kernels=True) as gw:
        watcher = Watcher(gw, processes)
        async with watcher.running():
            responses = await concurrent_posts(gw, 6)
        statuses = sorted(r.status_code for r in responses)
        assert statuses == [201, 201, 403, 403, 403, 403], [r.text for r in responses]
        for refused in (r for r in responses if r.status_code == 403):
            # KG's exact answer (tornado.web.HTTPError(403, "Resource Limit"))
            assert assert_error(refused, 403) == {"reason": "Forbidden", "message": "Resource Limit"}
        assert watcher.polls > 0
        assert watcher.max_listed <= 2
        assert watcher.max_processes <= 2
        started = sorted(r.json()["id"] for r in responses if r.status_code == 201)
        assert sorted(await listed(gw)) == started

        # a freed place can be used again, and only one
        assert (await gw.client.delete(f"/api/kernels/{started[0]}")).status_code == 204
        responses = await concurrent_posts(gw, 3)
        assert sorted(r.status_code for r in responses) == [201, 403, 403]
        assert len(await listed(gw)) == 2


async def test_seed_runs_on_every_new_kernel() -> None:
    async with serve(seed_uri=str(SEED), list_kernels=True) as gw:
        kernel_id = await gw.start_kernel()
        out = await run(gw, kernel_id, "print(SEEDED_VALUE, seed_log, SEED_PID == __import__('os').getpid())")
        assert out == "42 ['cell 2'] True\n"
        # a kernel started with an env is seeded too
        other = await gw.start_kernel(env={"KERNEL_X": "1"})
        assert await run(gw, other, "print(SEEDED_VALUE)") == "42\n"


async def test_seed_given_as_file_uri() -> None:
    async with serve(seed_uri=SEED.as_uri()) as gw:
        kernel_id = await gw.start_kernel()
        assert await run(gw, kernel_id, "print(SEEDED_VALUE)") == "42\n"


async def test_failing_seed_is_500_and_leaves_no_kernel() -> None:
    processes = Processes()
    async with serve(seed_uri=str(FAILING_SEED), list_kernels=True, max_kernels=1) as gw:
        for _ in range(2):  # the failed start gives its place back: the second try is a 500, not a 403
            body = assert_error(await gw.client.post("/api/kernels", json={}), 500)
            assert "seed" in body["message"].lower()
            assert await listed(gw) == []
        await settle(lambda: processes.count() == 0)


async def test_prespawned_kernels_are_listed_seeded_and_counted() -> None:
    async with serve(prespawn_count=2, max_kernels=3, seed_uri=str(SEED), list_kernels=True) as gw:
        kernels = (await gw.client.get("/api/kernels")).json()
        assert len(kernels) == 2
        assert {k["name"] for k in kernels} == {"python3"}
        assert await run(gw, kernels[0]["id"], "print(SEEDED_VALUE)") == "42\n"
        # prespawned kernels count towards KG_MAX_KERNELS, as in KG
        assert (await gw.client.post("/api/kernels", json={})).status_code == 201
        assert_error(await gw.client.post("/api/kernels", json={}), 403)
        assert len(await listed(gw)) == 3


async def test_warm_pool_serves_ready_seeded_kernels() -> None:
    async with serve(warm_pool=1, seed_uri=str(SEED), list_kernels=True) as gw:
        assert await listed(gw) == []  # warm kernels are hidden
        service = gw.app.state.kernels
        for round_ in range(2):
            # wait for the (re)filled pool
            for _ in range(200):
                if service.warm_count == 1:
                    break
                await asyncio.sleep(0.05)
            assert service.warm_count == 1, f"pool not refilled (round {round_})"
            (warm,) = service.warm_kernels()
            response = await gw.client.post("/api/kernels", json={})
            assert response.status_code == 201, response.text
            kernel_id = response.json()["id"]
            assert kernel_id == warm.id, "the start should have taken the warm kernel, not made one"
            assert kernel_id in await listed(gw)
            assert await run(gw, kernel_id, "print(SEEDED_VALUE + 1)") == "43\n"

        # a kernel with its own env does not come from the pool: it gets exactly that env
        kernel_id = await gw.start_kernel(env={"KERNEL_FRESH": "yes"})
        out = await run(gw, kernel_id, "import os; print(os.environ.get('KERNEL_FRESH'), SEEDED_VALUE)")
        assert out == "yes 42\n"


async def test_warm_pool_respects_max_kernels() -> None:
    processes = Processes()
    async with serve(warm_pool=2, max_kernels=2, list_kernels=True) as gw:
        service = gw.app.state.kernels
        assert service.warm_count == 2
        assert processes.count() == 2
        watcher = Watcher(gw, processes)
        async with watcher.running():
            responses = await concurrent_posts(gw, 5)
            assert sorted(r.status_code for r in responses) == [201, 201, 403, 403, 403]
            assert len(await listed(gw)) == 2
            # both places went to warm kernels; the pool does not refill beyond the limit
            await asyncio.sleep(0.5)
            assert service.warm_count == 0
        assert watcher.max_listed <= 2
        assert watcher.max_processes <= 2

        ids = await listed(gw)
        assert (await gw.client.delete(f"/api/kernels/{ids[0]}")).status_code == 204
        response = await gw.client.post("/api/kernels", json={})
        assert response.status_code == 201, response.text
        assert json.loads(await run(gw, response.json()["id"], "print(1 + 1)")) == 2
        assert_error(await gw.client.post("/api/kernels", json={}), 403)
        assert len(await listed(gw)) == 2
        assert service.warm_count == 0


async def test_warm_kernel_started_before_the_limit_filled_is_dropped() -> None:
    processes = Processes()
    async with serve(warm_pool=1, max_kernels=2, list_kernels=True) as gw:
        service = gw.app.state.kernels
        assert service.warm_count == 1
        first = await gw.client.post("/api/kernels", json={})  # takes the warm kernel; a refill starts
        assert first.status_code == 201
        second = await gw.client.post("/api/kernels", json={})  # takes the last place while it warms
        assert second.status_code == 201
        assert_error(await gw.client.post("/api/kernels", json={}), 403)
        await settle(lambda: service.stats().warm_starting == 0)
        assert service.warm_count == 0  # the late warm kernel was not kept beyond the limit
        await settle(lambda: processes.count() <= 2)
        assert len(await listed(gw)) == 2


async def test_listing_never_fails_while_a_kernel_is_starting(tmp_path: Path) -> None:
    """A kernel being started and seeded is not listed yet, and listing meanwhile answers normally."""
    import nbformat

    slow_seed = tmp_path / "slow_seed.ipynb"
    seeded = tmp_path / "seeded"  # the seed's last act: a kernel listed before it exists was listed too soon
    cell = f"import pathlib, time; time.sleep(1.5); pathlib.Path({str(seeded)!r}).write_text('done')"
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, slow_seed)
    async with serve(seed_uri=str(slow_seed), list_kernels=True) as gw:
        start = asyncio.create_task(gw.client.post("/api/kernels", json={}))
        polls = 0
        while not start.done():
            for path in ("/api/kernels", "/api/sessions"):
                response = await gw.client.get(path)
                assert response.status_code == 200, response.text
                # The kernel is listed once seeded, which may be a moment before its 201 reaches us.
                if not seeded.exists():
                    assert response.json() == [], f"{path} shows a kernel that is still starting"
            polls += 1
            await asyncio.sleep(0.05)
        created = (await start).json()
        assert polls >= 10, f"the start was too quick ({polls} polls) to test listing during it"
        kernels = (await gw.client.get("/api/kernels")).json()
        assert [k["id"] for k in kernels] == [created["id"]]
        assert set(kernels[0]) == {"id", "name", "last_activity", "execution_state", "connections"}

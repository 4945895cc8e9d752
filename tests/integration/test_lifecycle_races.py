"""Lifecycle steps that overlap: restart, interrupt and delete of one kernel, starts during close(),
kernels that die while starting, and asyncio's "exception was never retrieved" reports."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from jupyter_client.kernelspec import KernelSpecManager

from app.errors import KernelStartFailed, KernelUnavailable
from app.kernels.policy import KernelPolicy
from app.kernels.ports import PortRange
from app.kernels.seed import Seed
from app.kernels.service import KernelService
from tests.processes import children, kill_leftovers, wait_gone
from tests.support import Gateway, free_port_block, stdout_of

pytestmark = pytest.mark.timeout(240)


def new_children(baseline: set[int]) -> set[int]:
    return children(os.getpid()) - baseline


async def kernel_pid(gw: Gateway, kernel_id: str) -> int:
    ws = await gw.connect(kernel_id)
    try:
        reply, outputs = await ws.execute("import os; print(os.getpid())", limit=60)
    finally:
        await ws.close()
    assert reply["status"] == "ok", reply
    return int(stdout_of(outputs))


@contextmanager
def loop_errors() -> Iterator[list[dict[str, Any]]]:
    """Collect what asyncio reports to the loop's exception handler (e.g. "never retrieved")."""
    loop = asyncio.get_running_loop()
    seen: list[dict[str, Any]] = []
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _loop, context: seen.append(context))
    try:
        yield seen
    finally:
        loop.set_exception_handler(previous)


# -- restart / interrupt / delete of one kernel, over HTTP --------------------------------------------------
@pytest.mark.parametrize("delay", [0.0, 0.05, 0.3, 1.0])
async def test_delete_during_restart_is_never_a_server_error(gateway: Gateway, delay: float) -> None:
    baseline = children(os.getpid())
    kernel_id = await gateway.start_kernel()
    pids = {await kernel_pid(gateway, kernel_id)}
    url = f"/api/kernels/{kernel_id}"
    try:
        restart = asyncio.create_task(gateway.client.post(f"{url}/restart", timeout=120))
        await asyncio.sleep(delay)  # the race is the point: every interleaving must get a precise answer
        interrupt = asyncio.create_task(gateway.client.post(f"{url}/interrupt", timeout=120))
        await asyncio.sleep(0.05)
        delete = asyncio.create_task(gateway.client.delete(url, timeout=120))
        restarted, interrupted, deleted = await restart, await interrupt, await delete
        # Each finished before the delete, or found the kernel gone.
        assert restarted.status_code in (200, 404), restarted.text
        assert interrupted.status_code in (204, 404), interrupted.text
        assert deleted.status_code == 204, deleted.text
        assert (await gateway.client.get(url)).status_code == 404
        assert (await gateway.client.get("/api/kernels")).json() == []
        leaked = await asyncio.to_thread(wait_gone, new_children(baseline) | pids, 20)
        assert not leaked, f"kernel processes outlived their delete: {leaked}"
    finally:
        kill_leftovers(new_children(baseline))


async def test_delete_waits_for_a_restart_and_steps_behind_it_are_404(gateway: Gateway) -> None:
    baseline = children(os.getpid())
    kernel_id = await gateway.start_kernel()
    url = f"/api/kernels/{kernel_id}"
    ws = await gateway.connect(kernel_id)
    slow_exit = "import atexit, time; atexit.register(time.sleep, 2)"  # its restart takes 2 s or more
    reply, _ = await ws.execute(slow_exit, limit=60)
    await ws.close()
    assert reply["status"] == "ok"
    try:
        restart = asyncio.create_task(gateway.client.post(f"{url}/restart", timeout=120))
        await asyncio.sleep(0.5)
        delete = asyncio.create_task(gateway.client.delete(url, timeout=120))
        async with asyncio.timeout(30):  # the delete unlists the kernel at once ...
            while (await gateway.client.get(url)).status_code != 404:
                await asyncio.sleep(0.02)
        assert not restart.done(), "the restart should still be running"
        assert not delete.done(), "the delete should wait for the restart"
        # ... so every step asked for meanwhile finds no kernel.
        for step in ("interrupt", "restart"):
            queued = await gateway.client.post(f"{url}/{step}", timeout=120)
            assert queued.status_code == 404, queued.text
            assert queued.json()["message"] == f"Kernel does not exist: {kernel_id}"
        restarted, deleted = await restart, await delete
        assert restarted.status_code == 200, restarted.text  # it was first: it completes
        assert deleted.status_code == 204, deleted.text
        assert not await asyncio.to_thread(wait_gone, new_children(baseline), 20)
    finally:
        kill_leftovers(new_children(baseline))


async def test_restarts_and_interrupts_take_turns(gateway: Gateway) -> None:
    baseline = children(os.getpid())
    kernel_id = await gateway.start_kernel()
    try:
        steps = [
            gateway.client.post(f"/api/kernels/{kernel_id}/{step}", timeout=180)
            for step in ("restart", "interrupt", "restart", "interrupt", "restart")
        ]
        answers = await asyncio.gather(*steps)
        assert [r.status_code for r in answers] == [200, 204, 200, 204, 200], [r.text for r in answers]
        ws = await gateway.connect(kernel_id)
        reply, outputs = await ws.execute("print('still here')", limit=60)
        await ws.close()
        assert reply["status"] == "ok"
        assert stdout_of(outputs) == "still here\n"
        assert len(new_children(baseline)) == 1, "restarts left more than one kernel process"
        deletes = await asyncio.gather(
            gateway.client.delete(f"/api/kernels/{kernel_id}"),
            gateway.client.delete(f"/api/kernels/{kernel_id}"),
        )
        assert sorted(r.status_code for r in deletes) == [204, 404]
        assert not await asyncio.to_thread(wait_gone, new_children(baseline), 20)
    finally:
        kill_leftovers(new_children(baseline))


# -- executor futures ---------------------------------------------------------------------------------------
async def test_a_kernel_dying_during_server_side_execution_leaves_no_unretrieved_exception(
    gateway: Gateway,
) -> None:
    """The request waits on its reply, never on its idle status: both fail when the kernel dies."""
    kernel_id = await gateway.start_kernel()
    kernel = gateway.app.state.kernels.get(kernel_id)
    with loop_errors() as seen:
        for _ in range(2):
            pid = await kernel_pid(gateway, kernel_id)
            run = asyncio.create_task(kernel.executor.execute("import time; time.sleep(60)", 120))
            async with asyncio.timeout(30):
                while kernel.execution_state != "busy":
                    await asyncio.sleep(0.02)
            os.kill(pid, signal.SIGKILL)  # no reply will come; the restarter brings a new kernel
            try:
                await run
            except KernelUnavailable:
                pass
            else:
                pytest.fail("the execution should have failed with the kernel")
            del run  # the next round runs on the restarted kernel, once it is back (as clients wait for idle)
            async with asyncio.timeout(60):
                while kernel.execution_state != "idle":
                    await asyncio.sleep(0.05)
        for _ in range(3):
            gc.collect()
            await asyncio.sleep(0.05)
    assert seen == [], [context.get("message") for context in seen]
    assert (await gateway.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204


# -- the service's own lifecycle ----------------------------------------------------------------------------
@asynccontextmanager
async def service(
    specs: KernelSpecManager | None = None, seed: Seed | None = None
) -> AsyncIterator[KernelService]:
    kernels = KernelService(KernelPolicy(start_timeout=90), specs or KernelSpecManager(), seed)
    try:
        yield kernels
    finally:
        await kernels.close()


async def test_close_during_a_start_stops_it_and_reaps_the_kernel() -> None:
    baseline = children(os.getpid())
    slow = Seed("python3", ("import time; time.sleep(60)",))
    try:
        async with service(seed=slow) as kernels:
            start = asyncio.create_task(kernels.start())
            async with asyncio.timeout(60):  # the kernel process exists: it is being seeded
                while not new_children(baseline):
                    await asyncio.sleep(0.05)
            with loop_errors() as seen:
                await kernels.close()
                with pytest.raises(KernelUnavailable, match="The gateway is shutting down"):
                    await start
                gc.collect()
            assert seen == []
            assert not await asyncio.to_thread(wait_gone, new_children(baseline), 5), (
                "the kernel survived close()"
            )
            assert len(kernels) == 0
            # After close(), starting is refused with a clear answer (503).
            with pytest.raises(KernelUnavailable, match="The gateway is shutting down") as refused:
                await kernels.start()
            assert refused.value.status == 503
    finally:
        kill_leftovers(new_children(baseline))


async def test_a_kernel_that_dies_while_starting_is_started_afresh(tmp_path: Path) -> None:
    """Like a kernel whose port was taken before it could bind it: the first process exits at once."""
    spec_dir = tmp_path / "kernels" / "flaky"
    spec_dir.mkdir(parents=True)
    marker = tmp_path / "first-attempt"
    script = (
        "import os, pathlib, sys\n"
        "marker = pathlib.Path(sys.argv[2])\n"
        "if not marker.exists():\n"
        "    marker.write_text('died')\n"
        "    sys.exit(1)\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'ipykernel_launcher', '-f', sys.argv[1]])\n"
    )
    argv = [sys.executable, "-c", script, "{connection_file}", str(marker)]
    kernel_json = {"argv": argv, "display_name": "Flaky", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(kernel_json))
    baseline = children(os.getpid())
    try:
        async with service(KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])) as kernels:
            kernel = await kernels.start("flaky")
            assert marker.read_text() == "died", "the first attempt should have died"
            result = await kernel.executor.execute("print(6 * 7)", 30)
            assert result.text == "42\n"
            assert len(new_children(baseline)) == 1
    finally:
        kill_leftovers(new_children(baseline))
    assert not await asyncio.to_thread(wait_gone, new_children(baseline), 5)


async def test_a_kernel_that_cannot_be_launched_fails_after_its_attempts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An unexpected launch failure is tried again (it may be passing), then reported as a 500."""
    spec_dir = tmp_path / "kernels" / "missing"
    spec_dir.mkdir(parents=True)
    argv = [str(tmp_path / "no-such-interpreter"), "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": "Missing"}))
    async with service(KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])) as kernels:
        with pytest.raises(KernelStartFailed, match="Kernel missing failed to start") as failed:
            await kernels.start("missing")
        assert failed.value.status == 500
        assert len(kernels) == 0
    attempts = [r for r in caplog.records if "did not start (attempt" in r.getMessage()]
    assert len(attempts) == 3
    assert any("no-such-interpreter" in (r.exc_text or "") for r in caplog.records)


class RecordingSpecs(KernelSpecManager):  # type: ignore[misc]
    """A real KernelSpecManager that notes which thread reads each kernelspec."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.readers: list[threading.Thread] = []

    def get_kernel_spec(self, kernel_name: str) -> Any:
        self.readers.append(threading.current_thread())
        return super().get_kernel_spec(kernel_name)


async def test_kernelspecs_are_read_off_the_event_loop() -> None:
    specs = RecordingSpecs()
    async with service(specs) as kernels:
        kernel = await kernels.start()
        await kernels.restart(kernel.id)
        assert (await kernel.executor.execute("print('ok')", 30)).text == "ok\n"
    assert specs.readers, "no kernelspec was read"
    loop_thread = threading.current_thread()
    assert all(reader is not loop_thread for reader in specs.readers)


async def test_a_kernel_dying_while_seeded_fails_the_start_at_once() -> None:
    baseline = children(os.getpid())
    fatal = Seed("python3", ("import os; os._exit(1)",))
    try:
        async with service(seed=fatal) as kernels:
            started = time.monotonic()
            with pytest.raises(KernelStartFailed):
                await kernels.start()
            assert time.monotonic() - started < 30, "the start waited for its deadline (90 s)"
            assert len(kernels) == 0
            survivors = await asyncio.to_thread(wait_gone, new_children(baseline), 15)
            assert not survivors, "a kernel process outlived the failed start"
    finally:
        kill_leftovers(new_children(baseline))


def kernel_ports(info: dict[str, Any]) -> set[int]:
    return {info[f"{channel}_port"] for channel in ("shell", "iopub", "stdin", "control", "hb")}


async def test_local_kernels_listen_on_leased_ports_below_the_ephemeral_range() -> None:
    """Outgoing connections can never take a kernel's port before it binds it (see app/kernels/ports.py)."""
    first = free_port_block(10)
    policy = KernelPolicy(start_timeout=90, port_range=PortRange(first, first + 9))
    kernels = KernelService(policy, KernelSpecManager(), None)
    try:
        kernel = await kernels.start()
        ports = kernel_ports(kernel.connection_info)
        assert len(ports) == 5
        assert all(first <= port <= first + 9 for port in ports), ports
        assert (await kernel.executor.execute("print('on leased ports')", 30)).text == "on leased ports\n"
        await kernels.restart(kernel.id)  # the same ports: every socket the gateway holds stays valid
        assert {
            kernel.connection_info[f"{c}_port"] for c in ("shell", "iopub", "stdin", "control", "hb")
        } == ports
        assert (await kernel.executor.execute("print('again')", 30)).text == "again\n"
        await kernels.shutdown(kernel.id)
        assert kernels.stats().running == 0
        assert kernels.port_pool.leased == 0  # given back once the kernel is gone
    finally:
        await kernels.close()

"""The channels WebSocket across connection and kernel lifecycles: replay, death, restart, interrupt, delete.

Real kernels and real websockets; helpers come from test_channels.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import uuid
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from app.kernels.wire import V1_SUBPROTOCOL
from tests.integration.test_channels import (
    FRAMINGS,
    Chan,
    Msg,
    detached_sessions,
    expect_eventually_ok,
    kernel_model,
    open_chan,
    stdout,
    wait_connections,
    wait_detached,
    wait_run,
)
from tests.support import Gateway, execute_content, serve

# Output starts after a short pause: whatever the server sends between a client starting its close
# handshake and the server seeing it is discarded by that client, which no server can know (the
# protocol has no acknowledgements), so a test must not print into that window.
PRINT_LOOP = (
    "import time\ntime.sleep(0.3)\nfor i in range(5):\n    print(i, flush=True)\n    time.sleep(0.2)\n"
)


async def messages_until_marker(chan: Chan, limit: float = 30) -> list[Msg]:
    """Everything a socket receives up to the end of a fresh request of its own (replay comes first)."""
    marker = await chan.send("execute_request", execute_content("'marker'"))
    seen: list[Msg] = []
    async with asyncio.timeout(limit):
        while True:
            message = await chan.recv()
            seen.append(message)
            if message.parent_id == marker and message.msg_type == "execute_reply":
                return seen


# -- replay ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("first_v1", "second_v1"),
    [
        pytest.param(False, False, id="legacy"),
        pytest.param(True, True, id="v1"),
        pytest.param(False, True, id="mixed"),
    ],
)
async def test_reconnect_replays_missed_output(gateway: Gateway, first_v1: bool, second_v1: bool) -> None:
    kernel_id = await gateway.start_kernel()
    session_id = uuid.uuid4().hex
    chan = await open_chan(gateway, kernel_id, v1=first_v1, session_id=session_id)
    msg_id = await chan.send("execute_request", execute_content(PRINT_LOOP))
    await chan.close()
    await wait_connections(gateway, kernel_id, 0)
    await wait_run(gateway, kernel_id)  # everything it printed was missed
    again = await open_chan(gateway, kernel_id, v1=second_v1, session_id=session_id)
    reply, outputs = await again.collect(msg_id, 15)
    assert reply.channel == "shell"
    assert reply.content["status"] == "ok"
    assert stdout(outputs) == "0\n1\n2\n3\n4\n"
    # after the replay the socket is live as usual
    reply_content, outputs = await again.execute("print('live')")
    assert reply_content["status"] == "ok"
    assert stdout(outputs) == "live\n"
    await again.close()


@pytest.mark.parametrize("stranger_id", [pytest.param("other", id="named"), pytest.param("", id="unnamed")])
async def test_a_different_session_gets_no_replay(stranger_id: str) -> None:
    # two sessions stay detached here (the stranger's and the owner's), so the cap is raised to two
    async with serve(replay_sessions=2) as gateway:
        kernel_id = await gateway.start_kernel()
        session_id = uuid.uuid4().hex
        chan = await open_chan(gateway, kernel_id, session_id=session_id)
        msg_id = await chan.send("execute_request", execute_content(PRINT_LOOP))
        await chan.close()
        await wait_run(gateway, kernel_id)
        stranger = await open_chan(gateway, kernel_id, v1=True, session_id=stranger_id)
        seen = await messages_until_marker(stranger)
        assert not [m for m in seen if m.parent_id == msg_id]
        await stranger.close()
        await wait_detached(gateway, kernel_id, 2 if stranger_id else 1)
        # the owner still gets its replay afterwards: the buffer was there, just not for strangers
        owner = await open_chan(gateway, kernel_id, session_id=session_id)
        reply, outputs = await owner.collect(msg_id, 15)
        assert reply.content["status"] == "ok"
        assert stdout(outputs) == "0\n1\n2\n3\n4\n"
        await owner.close()


async def test_replay_is_delivered_once(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    session_id = uuid.uuid4().hex
    chan = await open_chan(gateway, kernel_id, v1=True, session_id=session_id)
    msg_id = await chan.send(
        "execute_request", execute_content("import time; time.sleep(0.3); print('once')")
    )
    await chan.close()
    await wait_run(gateway, kernel_id)
    second = await open_chan(gateway, kernel_id, v1=True, session_id=session_id)
    _, outputs = await second.collect(msg_id, 15)
    assert stdout(outputs) == "once\n"
    await second.close()
    await wait_connections(gateway, kernel_id, 0)
    third = await open_chan(gateway, kernel_id, v1=True, session_id=session_id)
    seen = await messages_until_marker(third)
    assert not [m for m in seen if m.parent_id == msg_id]
    await third.close()


async def test_replay_expires() -> None:
    async with serve(replay_seconds=0.5) as gateway:
        kernel_id = await gateway.start_kernel()
        session_id = uuid.uuid4().hex
        chan = await open_chan(gateway, kernel_id, session_id=session_id)
        msg_id = await chan.send("execute_request", execute_content("print('gone')"))
        await chan.close()
        await wait_connections(gateway, kernel_id, 0)  # detached from here on ...
        await wait_detached(gateway, kernel_id, 0)  # ... until it expires
        again = await open_chan(gateway, kernel_id, session_id=session_id)
        seen = await messages_until_marker(again)
        assert not [m for m in seen if m.parent_id == msg_id]
        await again.close()


async def test_unnamed_sessions_are_not_kept() -> None:
    async with serve() as gateway:
        kernel_id = await gateway.start_kernel()
        chan = await open_chan(gateway, kernel_id, session_id="")
        reply, _ = await chan.execute("1")
        assert reply["status"] == "ok"
        await chan.close()
        await wait_connections(gateway, kernel_id, 0)
        assert detached_sessions(gateway, kernel_id) == 0  # no one could ever resume it


async def test_only_the_newest_detached_session_replays_by_default(gateway: Gateway) -> None:
    """FASTKG_REPLAY_SESSIONS is 1, as Jupyter Server keeps one buffer per kernel: the older one is gone."""
    kernel_id = await gateway.start_kernel()
    sent: dict[str, str] = {}
    for name in ("older", "newer"):
        chan = await open_chan(gateway, kernel_id, session_id=name)
        sent[name] = await chan.send("execute_request", execute_content(f"{PRINT_LOOP}print('{name}')"))
        await chan.close()
        await wait_connections(gateway, kernel_id, 0)
        await wait_run(gateway, kernel_id)
    assert detached_sessions(gateway, kernel_id) == 1
    newer = await open_chan(gateway, kernel_id, session_id="newer", v1=True)
    reply, outputs = await newer.collect(sent["newer"], 15)
    assert reply.content["status"] == "ok"
    assert stdout(outputs) == "0\n1\n2\n3\n4\nnewer\n"
    older = await open_chan(gateway, kernel_id, session_id="older")
    seen = await messages_until_marker(older)
    assert not [m for m in seen if m.parent_id == sent["older"]]
    await newer.close()
    await older.close()


CHUNKS = (
    "import sys, time\ntime.sleep(0.3)\n"
    "for i in range(12):\n"
    "    sys.stdout.write(f'<{i:02d}>' + 'c' * ((1 << 20) - 4)); sys.stdout.flush()\n"
)


async def test_replay_bytes_are_capped_per_kernel_and_keep_the_newest() -> None:
    cap = 4 * (1 << 20)
    async with serve(replay_sessions=2, replay_bytes=cap) as gateway:
        kernel_id = await gateway.start_kernel()
        listener = await open_chan(gateway, kernel_id, session_id="listener")
        await listener.close()
        runner = await open_chan(gateway, kernel_id, session_id="runner", v1=True)
        msg_id = await runner.send("execute_request", execute_content(CHUNKS))
        await runner.close()
        await wait_connections(gateway, kernel_id, 0)
        await wait_run(gateway, kernel_id, 60)  # 12 MiB of output to each of two detached sessions
        assert detached_sessions(gateway, kernel_id) == 2
        hub = gateway.app.state.kernels.get(kernel_id).hub
        buffered = sum(s.buffered for s in hub._detached.values())
        assert buffered <= cap, f"{buffered} bytes kept for replay, cap {cap}"

        runner = await open_chan(gateway, kernel_id, session_id="runner", v1=True)
        reply, outputs = await runner.collect(msg_id, 30)
        assert reply.content["status"] == "ok"
        text = stdout(outputs)
        tags = [int(tag) for tag in re.findall(r"<(\d\d)>", text)]
        assert tags, "the newest output was dropped too"
        assert tags == list(range(tags[0], 12))  # a contiguous, newest part
        listener = await open_chan(gateway, kernel_id, session_id="listener")
        seen = await messages_until_marker(listener)
        replayed = stdout([m for m in seen if m.parent_id == msg_id])
        assert len(text) + len(replayed) <= cap
        await runner.close()
        await listener.close()


# -- kernel death and restarts ------------------------------------------------------------------------------
async def test_kernel_death_ends_in_flight_requests_and_recovers(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    killer = await open_chan(gateway, kernel_id, v1=False)
    waiter = await open_chan(gateway, kernel_id, v1=True)
    reply, _ = await killer.execute(
        "import os, threading\nstate = 'old'\nthreading.Timer(1.5, os._exit, (1,)).start()"
    )
    assert reply["status"] == "ok"
    sleep_id = await waiter.send("execute_request", execute_content("import time; time.sleep(30)"))
    await waiter.until(lambda m: m.parent_id == sleep_id and m.msg_type == "execute_input")
    loop = asyncio.get_running_loop()
    started = loop.time()

    states: list[str] = []
    ended: Msg | None = None
    async with asyncio.timeout(12):
        while ended is None:
            message = await waiter.recv()
            if message.msg_type == "status" and message.channel == "iopub":
                states.append(message.content["execution_state"])
            if message.parent_id == sleep_id and message.msg_type == "execute_reply":
                ended = message
    assert loop.time() - started < 10
    assert ended.channel == "shell"
    assert ended.content["status"] in ("error", "aborted"), ended.content
    assert {"restarting", "dead"} & set(states), states
    notice = await killer.until(
        lambda m: m.msg_type == "status" and m.content["execution_state"] in ("restarting", "dead"), 10
    )
    assert notice.channel == "iopub"
    # the in-flight request is also closed out on iopub, so clients waiting for idle stop waiting
    await waiter.until(
        lambda m: (
            m.parent_id == sleep_id and m.msg_type == "status" and m.content["execution_state"] == "idle"
        ),
        5,
    )

    # the kernel comes back on its own and both sockets work again, with fresh state
    await expect_eventually_ok(killer, 40)
    await expect_eventually_ok(waiter, 20)
    reply, _ = await waiter.execute("state")
    assert reply["status"] == "error"
    assert reply["ename"] == "NameError"
    model = await kernel_model(gateway, kernel_id)
    assert model["connections"] == 2
    await killer.close()
    await waiter.close()


ONE_LIFE_KERNEL = """
import sys
from pathlib import Path
marker = Path(__file__).with_name("started")
if marker.exists():
    sys.exit(1)  # every restart dies at once
marker.touch()
from ipykernel.kernelapp import launch_new_instance
launch_new_instance()
"""


async def test_a_kernel_that_cannot_come_back_is_reported_dead(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir = tmp_path / "kernels" / "one-life"
    spec_dir.mkdir(parents=True)
    (spec_dir / "kernel.py").write_text(ONE_LIFE_KERNEL)
    argv = [sys.executable, str(spec_dir / "kernel.py"), "-f", "{connection_file}"]
    (spec_dir / "kernel.json").write_text(
        json.dumps({"argv": argv, "display_name": "one life", "language": "python"})
    )
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    async with serve() as gateway:
        kernel_id = await gateway.start_kernel(name="one-life")
        chan = await open_chan(gateway, kernel_id, v1=True)
        sleep_id = await chan.send(
            "execute_request",
            execute_content(
                "import os, threading, time\nthreading.Timer(0.5, os._exit, (1,)).start()\ntime.sleep(30)"
            ),
        )
        states: list[str] = []
        ended: Msg | None = None
        async with asyncio.timeout(40):
            while "dead" not in states:
                message = await chan.recv(40)
                if message.msg_type == "status" and message.parent_id == "":
                    states.append(message.content["execution_state"])
                if message.parent_id == sleep_id and message.msg_type == "execute_reply":
                    ended = message
        assert ended is not None, "the in-flight request was never ended"
        assert ended.content["status"] in ("error", "aborted")
        assert states[0] == "restarting"
        assert states[-1] == "dead"
        assert (await kernel_model(gateway, kernel_id))["execution_state"] == "dead"
        # the gateway itself is fine, and the dead kernel can still be deleted
        assert (await gateway.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204
        assert await chan.close_code(10) in (1000, 1001)


@pytest.mark.parametrize("v1", FRAMINGS)
async def test_rest_restart_keeps_sockets_working(gateway: Gateway, v1: bool) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=v1)
    reply, _ = await chan.execute("x = 42")
    assert reply["status"] == "ok"
    sleep_id = await chan.send("execute_request", execute_content("import time; time.sleep(30)"))
    await chan.until(lambda m: m.parent_id == sleep_id and m.msg_type == "execute_input")

    response = await gateway.client.post(f"/api/kernels/{kernel_id}/restart")
    assert response.status_code == 200, response.text
    assert response.json()["id"] == kernel_id
    # the request that was running when the kernel restarted is answered, not left hanging
    ended = await chan.until(lambda m: m.parent_id == sleep_id and m.msg_type == "execute_reply", 10)
    assert ended.content["status"] in ("error", "aborted"), ended.content

    reply, _ = await chan.execute("x", 20)
    assert reply["status"] == "error"
    assert reply["ename"] == "NameError"
    reply, outputs = await chan.execute("print('after restart')")
    assert reply["status"] == "ok"
    assert stdout(outputs) == "after restart\n"
    assert (await kernel_model(gateway, kernel_id))["connections"] == 1
    await chan.close()


async def test_interrupt_stops_a_running_request(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=True)
    msg_id = await chan.send("execute_request", execute_content("import time; time.sleep(30)"))
    await chan.until(lambda m: m.parent_id == msg_id and m.msg_type == "execute_input")
    await asyncio.sleep(0.3)
    loop = asyncio.get_running_loop()
    started = loop.time()
    response = await gateway.client.post(f"/api/kernels/{kernel_id}/interrupt")
    assert response.status_code == 204
    reply, outputs = await chan.collect(msg_id, 10)
    assert loop.time() - started < 5
    assert reply.content["status"] == "error"
    assert reply.content["ename"] == "KeyboardInterrupt"
    assert [m.content["ename"] for m in outputs if m.msg_type == "error"] == ["KeyboardInterrupt"]
    reply_content, outputs = await chan.execute("print('still alive')")
    assert reply_content["status"] == "ok"
    assert stdout(outputs) == "still alive\n"
    await chan.close()


async def test_delete_closes_open_sockets(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    legacy = await open_chan(gateway, kernel_id, v1=False)
    v1 = await open_chan(gateway, kernel_id, v1=True)
    reply, _ = await legacy.execute("1")
    assert reply["status"] == "ok"
    idle = await open_chan(gateway, kernel_id, session_id="idle-but-detached")
    await idle.close()  # a detached session waiting for replay must not keep anything alive either
    response = await gateway.client.delete(f"/api/kernels/{kernel_id}")
    assert response.status_code == 204
    codes = await asyncio.gather(legacy.close_code(10), v1.close_code(10))
    assert all(code in (1000, 1001) for code in codes), codes
    with pytest.raises(InvalidStatus) as refused:
        await open_chan(gateway, kernel_id)
    assert refused.value.response.status_code == 404
    assert (await gateway.client.get(f"/api/kernels/{kernel_id}")).status_code == 404


# -- refused upgrades -----------------------------------------------------------------------------------
async def test_unknown_kernel_is_refused(gateway: Gateway) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await open_chan(gateway, str(uuid.uuid4()), v1=True)
    assert refused.value.response.status_code == 404
    body = json.loads(refused.value.response.body or b"{}")
    assert set(body) >= {"reason", "message"}


async def test_upgrade_needs_the_token(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    base = gateway.ws_url(kernel_id, token=False)
    for url, headers in [
        (base, {}),
        (base + "&token=wrong", {}),
        (base, {"Authorization": "token wrong"}),
    ]:
        with pytest.raises(InvalidStatus) as refused:
            await connect(url, additional_headers=headers, proxy=None, open_timeout=10)
        assert refused.value.response.status_code == 401
    assert (await kernel_model(gateway, kernel_id))["connections"] == 0
    # the header form works as well as the query argument
    ws = await connect(
        base,
        additional_headers={"Authorization": f"token {gateway.token}"},
        subprotocols=[V1_SUBPROTOCOL],  # type: ignore[list-item]
        proxy=None,
        max_size=None,
    )
    chan = Chan(ws, v1=True)
    reply, _ = await chan.execute("1")
    assert reply["status"] == "ok"
    await chan.close()


async def test_foreign_origin_is_refused(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    with pytest.raises(InvalidStatus) as refused:
        await open_chan(gateway, kernel_id, origin="http://evil.example")  # type: ignore[arg-type]
    assert refused.value.response.status_code == 403
    same = await open_chan(gateway, kernel_id, origin=gateway.url.rstrip("/"))  # type: ignore[arg-type]
    reply, _ = await same.execute("1")
    assert reply["status"] == "ok"
    await same.close()

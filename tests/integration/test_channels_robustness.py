"""Robustness of the channels WebSocket: malformed frames, size limits, floods, slow readers and leaks.

Every bad client is checked for a proper close code, and a well-behaved client on the same kernel is
checked to be undisturbed. The server runs in this process, so its memory, file descriptors and tasks
are this process's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import resource
import struct
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from jupyter_server.services.kernels.connection.base import serialize_msg_to_ws_v1
from websockets.exceptions import ConnectionClosed

from tests.integration.test_channels import (
    Chan,
    kernel_model,
    make_message,
    open_chan,
    stdout,
    wait_connections,
    wait_run,
)
from tests.support import Gateway, execute_content, serve

MiB = 1 << 20
TOKEN = "robustness-token"


def v1_frame(channel: str | bytes, parts: list[bytes]) -> bytes:
    if isinstance(channel, str):
        return bytes(serialize_msg_to_ws_v1(parts, channel))
    offsets = [8 * (len(parts) + 3), 8 * (len(parts) + 3) + len(channel)]
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    return struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets) + channel + b"".join(parts)


def valid_parts() -> list[bytes]:
    message = make_message("execute_request", execute_content("1"))
    return [json.dumps(message[k]).encode() for k in ("header", "parent_header", "metadata", "content")]


def legacy(**changes: Any) -> str:
    return json.dumps({**make_message("execute_request", execute_content("1")), **changes})


def rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


# -- malformed frames: one kernel, two well-behaved bystanders, many bad clients -------------------------
MALFORMED = [
    pytest.param(False, "{not json", {1007}, id="legacy-invalid-json"),
    pytest.param(False, "[1, 2]", {1007}, id="legacy-not-an-object"),
    pytest.param(False, json.dumps({"channel": "shell", "content": {}}), {1007}, id="legacy-no-header"),
    pytest.param(False, legacy(header="x"), {1007}, id="legacy-header-not-an-object"),
    pytest.param(False, legacy(content=[1]), {1007}, id="legacy-content-not-an-object"),
    pytest.param(False, legacy(content={"x": float("nan")}), {1007}, id="legacy-nan"),
    pytest.param(False, legacy(channel=7), {1007}, id="legacy-channel-not-a-string"),
    pytest.param(False, b"\x00\x00\x00\x09garbage!", {1007}, id="legacy-binary-garbage"),
    pytest.param(False, struct.pack("!III", 2, 12, 4), {1007}, id="legacy-binary-bad-offsets"),
    pytest.param(False, struct.pack("!II", 1, 8) + b"{nope", {1007}, id="legacy-binary-bad-json"),
    pytest.param(True, bytes(range(256)) * 4, {1007}, id="v1-garbage"),
    pytest.param(True, b"", {1007}, id="v1-empty"),
    pytest.param(True, struct.pack("<7Q", 6, 56, 61, 99, 100, 101, 10**9), {1007}, id="v1-offsets-past-end"),
    pytest.param(True, struct.pack("<Q", 1 << 40) + bytes(64), {1007}, id="v1-huge-offset-count"),
    pytest.param(
        True, v1_frame("shell", [b"not json", b"{}", b"{}", b"{}"]), {1007}, id="v1-header-not-json"
    ),
    pytest.param(
        True, v1_frame("shell", [*valid_parts()[:3], b"[1]"]), {1007}, id="v1-content-not-an-object"
    ),
    pytest.param(True, v1_frame("shell", valid_parts()[:3]), {1007}, id="v1-too-few-parts"),
    pytest.param(
        True,
        v1_frame("shell", [b'{"msg_type": "execute_request"}', *valid_parts()[1:]]),
        {1007},
        id="v1-header-without-msg-id",
    ),
    pytest.param(
        False, legacy(header={"msg_type": "execute_request"}), {1007}, id="legacy-header-without-msg-id"
    ),
    pytest.param(True, legacy(), {1003}, id="v1-text-frame"),
    pytest.param(
        True,
        v1_frame(b"\xff\xfe", valid_parts()),
        {1007, 1008},
        id="v1-channel-not-utf8",
    ),
    pytest.param(False, "x" * (10 * MiB + 1), {1009}, id="legacy-too-big-compressible"),
    pytest.param(True, os.urandom(10 * MiB + 1), {1009}, id="v1-too-big"),
]


@pytest_asyncio.fixture(scope="class", loop_scope="class")
async def shared() -> AsyncIterator[tuple[Gateway, str, list[Chan]]]:
    """One gateway and kernel with two well-behaved clients (legacy and v1), for a whole test class."""
    async with serve(auth_token=TOKEN, list_kernels=True) as gateway:
        kernel_id = await gateway.start_kernel()
        bystanders = [
            await open_chan(gateway, kernel_id, v1=False),
            await open_chan(gateway, kernel_id, v1=True),
        ]
        yield gateway, kernel_id, bystanders
        for chan in bystanders:
            await chan.close()


class TestMalformedFrames:
    """Each bad frame closes its own connection with a proper code; nobody else notices."""

    @pytest.mark.asyncio(loop_scope="class")
    @pytest.mark.parametrize(("v1", "frame", "codes"), MALFORMED)
    async def test_bad_frame_is_closed_and_disturbs_nobody(
        self, shared: tuple[Gateway, str, list[Chan]], v1: bool, frame: str | bytes, codes: set[int]
    ) -> None:
        gateway, kernel_id, bystanders = shared
        # the bystanders have requests in flight while the bad frame arrives
        in_flight = [
            (
                chan,
                await chan.send(
                    "execute_request", execute_content(f"import time; time.sleep(0.3); print({i})")
                ),
            )
            for i, chan in enumerate(bystanders)
        ]
        bad = await open_chan(gateway, kernel_id, v1=v1)
        try:
            with contextlib.suppress(ConnectionClosed):
                await bad.ws.send(frame)
            assert await bad.close_code(15) in codes
        finally:
            await bad.close()
        for i, (chan, msg_id) in enumerate(in_flight):
            reply, outputs = await chan.collect(msg_id)
            assert reply.content["status"] == "ok"
            assert stdout(outputs) == f"{i}\n"
        await wait_connections(gateway, kernel_id, 2)
        assert (await gateway.client.get("/api")).status_code == 200
        for chan in bystanders:
            reply_content, outputs = await chan.execute("print('fine')")
            assert reply_content["status"] == "ok"
            assert stdout(outputs) == "fine\n"

    @pytest.mark.asyncio(loop_scope="class")
    @pytest.mark.parametrize("v1", [pytest.param(False, id="legacy"), pytest.param(True, id="v1")])
    async def test_a_message_just_under_the_limit_is_relayed(
        self, shared: tuple[Gateway, str, list[Chan]], v1: bool
    ) -> None:
        gateway, kernel_id, _ = shared
        chan = await open_chan(gateway, kernel_id, v1=v1)
        # metadata padding: relayed to the kernel as-is, so the frame is ~9.5 MiB of real message
        code = "print(len(get_ipython().kernel.get_parent()['metadata']['pad']))"
        msg_id = await chan.send(
            "execute_request", execute_content(code), metadata={"pad": "p" * (9 * MiB + MiB // 2)}
        )
        reply, outputs = await chan.collect(msg_id, 60)
        assert reply.content["status"] == "ok", reply.content
        assert stdout(outputs) == f"{9 * MiB + MiB // 2}\n"
        await chan.close()

    @pytest.mark.asyncio(loop_scope="class")
    async def test_buffers_are_counted_towards_the_limit(
        self, shared: tuple[Gateway, str, list[Chan]]
    ) -> None:
        gateway, kernel_id, bystanders = shared
        chan = await open_chan(gateway, kernel_id, v1=True)
        with contextlib.suppress(ConnectionClosed):
            await chan.send("comm_msg", {"comm_id": "x", "data": {}}, buffers=[os.urandom(6 * MiB)] * 2)
        assert await chan.close_code(15) == 1009
        reply, _ = await bystanders[1].execute("1")
        assert reply["status"] == "ok"


# -- well-formed messages the relay cannot route -----------------------------------------------------------
@pytest.mark.parametrize("v1", [pytest.param(False, id="legacy"), pytest.param(True, id="v1")])
async def test_unroutable_messages_are_dropped_and_the_socket_goes_on(
    gateway: Gateway, v1: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """As in Jupyter Server: a message on an unknown channel or on iopub is logged and dropped."""
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=v1)
    caplog.set_level(logging.DEBUG, logger="app.kernels.bridge")
    dropped = [
        await chan.send("execute_request", execute_content("print('never')"), channel)
        for channel in ("nope", "iopub", "nope")
    ]
    msg_id = await chan.send("execute_request", execute_content("print('after')"))
    seen = []  # everything up to the reply and the idle status (iopub and shell are not ordered)
    async with asyncio.timeout(30):
        while (
            len([m for m in seen if m.parent_id == msg_id and m.msg_type in ("execute_reply", "status")]) < 3
        ):
            seen.append(await chan.recv())
    assert [m.content["status"] for m in seen if m.msg_type == "execute_reply"] == ["ok"]
    assert stdout(seen) == "after\n"  # nothing of the dropped ones ran ...
    assert not set(dropped) & {m.parent_id for m in seen}  # ... nor was answered
    assert (await kernel_model(gateway, kernel_id))["connections"] == 1
    notes = [r for r in caplog.records if r.getMessage().startswith("dropping a client message")]
    assert [r.levelno for r in notes] == [logging.WARNING, logging.DEBUG, logging.DEBUG]
    assert "'nope'" in notes[0].getMessage()
    assert "'iopub'" in notes[1].getMessage()
    await chan.close()


# -- floods and slow readers -------------------------------------------------------------------------------
async def test_a_client_flooding_a_busy_kernel_gets_a_proper_close(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    bystander = await open_chan(gateway, kernel_id, v1=True)
    flood = await open_chan(gateway, kernel_id, v1=True)
    busy = await flood.send("execute_request", execute_content("import time; time.sleep(2)"))
    await flood.until(lambda m: m.parent_id == busy and m.msg_type == "execute_input")
    # a message type the kernel drops quickly, so its queue drains fast once it is free again
    head = json.loads(valid_parts()[0])
    head["msg_type"] = "flood_request"
    frame = v1_frame(
        "shell", [json.dumps(head).encode(), b"{}", b"{}", json.dumps({"pad": "f" * 1000}).encode()]
    )
    sent = 0
    with contextlib.suppress(ConnectionClosed):
        for _ in range(30_000):
            await flood.ws.send(frame)
            sent += 1
    code = await flood.close_code(20)
    assert code in (1008, 1013), f"closed with {code} after {sent} frames"
    assert (await gateway.client.get("/api")).status_code == 200
    reply, outputs = await bystander.execute("print('after the flood')", 60)
    assert reply["status"] == "ok"
    assert stdout(outputs) == "after the flood\n"
    await bystander.close()


FIREHOSE = (
    "import sys, time\n"
    "chunk = 'x' * ((1 << 20) - 6)\n"
    "start, n = time.monotonic(), 0\n"
    "while time.monotonic() - start < {seconds} and n < {chunks}:\n"
    "    sys.stdout.write(f'<{{n:04d}}>' + chunk); sys.stdout.flush(); n += 1\n"
    "    time.sleep({pause})\n"
    "print('done', n)\n"
)


async def test_a_client_that_stops_reading_is_cut_off_with_bounded_memory(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    slow = await open_chan(gateway, kernel_id, v1=True, compression=None)
    before = peak = rss_mb()
    loop = asyncio.get_running_loop()
    started = loop.time()
    # up to 600 MiB of output as fast as the kernel can produce it; the client never reads
    await slow.send("execute_request", execute_content(FIREHOSE.format(seconds=8, chunks=600, pause=0)))
    dropped_at = None
    busy_seen = False
    deadline = started + 25
    while loop.time() < deadline:
        peak = max(peak, rss_mb())
        model = await kernel_model(gateway, kernel_id)
        if dropped_at is None and model["connections"] == 0:
            dropped_at = loop.time() - started
        busy_seen = busy_seen or model["execution_state"] == "busy"
        if busy_seen and model["execution_state"] == "idle":
            break
        await asyncio.sleep(0.1)
    assert peak - before < 300, f"server memory grew by {peak - before:.0f} MB for a client that never reads"
    assert dropped_at is not None, "the client that never reads was not disconnected"
    assert await slow.close_code(15) == 1013
    fresh = await open_chan(gateway, kernel_id, v1=False)
    reply, outputs = await fresh.execute("print(n)")
    assert reply["status"] == "ok"
    printed = int(stdout(outputs).split()[-1])
    growth = peak - before
    print(f"printed {printed} MiB; server memory grew by {growth:.0f} MB; cut off after {dropped_at:.1f} s")
    await fresh.close()


async def test_a_slow_reader_does_not_hold_back_a_fast_one(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    # without permessage-deflate: 1 MiB of 'x' would compress so well that TCP buffers hold it all
    slow = await open_chan(gateway, kernel_id, v1=True, compression=None)
    fast = await open_chan(gateway, kernel_id, v1=True, compression=None)
    tags: list[int] = []
    done = asyncio.get_running_loop().create_future()

    async def drain() -> None:
        try:
            async for data in fast.ws:
                assert isinstance(data, bytes)
                tags.extend(int(tag) for tag in re.findall(rb"<(\d{4})>", data))
                if b'"done ' in data[-200:] and not done.done():
                    done.set_result(data)
        except Exception as exc:
            if not done.done():
                done.set_exception(exc)
            raise

    reader = asyncio.create_task(drain())
    # 160 MiB at a pace a reading client keeps up with: far more than one connection may buffer
    await fast.send("execute_request", execute_content(FIREHOSE.format(seconds=30, chunks=160, pause=0.05)))
    try:
        last = await asyncio.wait_for(done, 40)
        assert b"done 160" in last
        missing = sorted(set(range(160)) - set(tags))
        assert not missing, f"the fast reader missed chunks {missing[:20]}"
        await wait_connections(gateway, kernel_id, 1, 10)  # the slow one was cut off, the fast one stays
        assert not reader.done()
    finally:
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionClosed):
            await reader
    assert await slow.close_code(15) == 1013
    reply, _ = await fast.execute("1")
    assert reply["status"] == "ok"
    await fast.close()


async def test_replay_buffer_is_bounded_and_keeps_the_newest(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=True, session_id="bounded")
    code = (
        "import sys, time\n"
        "time.sleep(0.5)\n"
        "for i in range(100):\n"
        "    sys.stdout.write(f'<{i:03d}>' + 'r' * ((1 << 20) - 5)); sys.stdout.flush()\n"
        "print('end')\n"
    )
    msg_id = await chan.send("execute_request", execute_content(code))
    await chan.close()
    await wait_connections(gateway, kernel_id, 0)
    await wait_run(gateway, kernel_id, 60)
    again = await open_chan(gateway, kernel_id, v1=True, session_id="bounded")
    reply, outputs = await again.collect(msg_id, 60)
    assert reply.content["status"] == "ok"
    text = stdout(outputs)
    tags = [int(tag) for tag in re.findall(r"<(\d{3})>", text)]
    assert text.endswith("end\n")
    assert tags[-1] == 99
    assert tags == list(range(tags[0], 100))  # a contiguous, newest part
    assert tags[0] > 0, "all 100 MiB were kept for a detached client"
    assert len(text) <= 66 * MiB
    await again.close()


# -- leaks ---------------------------------------------------------------------------------------------------
async def test_no_leaks_across_connect_cycles() -> None:
    async with serve() as gateway:  # default replay settings: short expiries would hide a leak
        kernel_id = await gateway.start_kernel()

        async def cycle(i: int) -> None:
            chan = await open_chan(gateway, kernel_id, v1=i % 2 == 0, session_id=f"s{i % 7}" if i % 3 else "")
            reply, _ = await chan.execute("1+1")
            assert reply["status"] == "ok"
            if i % 10 == 9:
                chan.ws.transport.abort()  # dropped without a close handshake
            else:
                await chan.close()

        for i in range(4):
            await cycle(i)
        await wait_connections(gateway, kernel_id, 0)
        base_fds, base_tasks = fd_count(), len(asyncio.all_tasks())
        for i in range(200):
            await cycle(i)
        await wait_connections(gateway, kernel_id, 0)
        fds, tasks = fd_count(), len(asyncio.all_tasks())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while (fds > base_fds + 8 or tasks > base_tasks + 2) and loop.time() < deadline:
            await asyncio.sleep(0.2)
            fds, tasks = fd_count(), len(asyncio.all_tasks())
        assert fds <= base_fds + 8, f"file descriptors: {base_fds} before 200 cycles, {fds} after"
        assert tasks <= base_tasks + 2, f"tasks: {base_tasks} before 200 cycles, {tasks} after"
        kernel = gateway.app.state.kernels.get(kernel_id)
        assert kernel.hub.detached == 1  # the last named one, for a resume
        chan = await open_chan(gateway, kernel_id)
        reply, _ = await chan.execute("1+1")
        assert reply["status"] == "ok"
        await chan.close()


async def test_more_websockets_than_zmqs_default_socket_limit() -> None:
    """libzmq's default of 1023 sockets per context must not cap the gateway at a few hundred clients."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 8192  # fds for 600 clients: both websocket ends, and two zmq sockets each
    if soft < wanted and (hard == resource.RLIM_INFINITY or hard >= wanted):
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
    try:
        async with serve() as gateway:
            kernel_id = await gateway.start_kernel()
            chans = []
            try:
                for _ in range(600):
                    chans.append(await open_chan(gateway, kernel_id, session_id=""))
                await wait_connections(gateway, kernel_id, 600, 30)
                for chan in (chans[0], chans[-1]):
                    reply, outputs = await chan.execute("print('one of many')", 60)
                    assert reply["status"] == "ok"
                    assert stdout(outputs) == "one of many\n"
            finally:
                await asyncio.gather(*(chan.close() for chan in chans))
            await wait_connections(gateway, kernel_id, 0, 30)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

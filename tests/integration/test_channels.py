"""The kernel channels WebSocket against a real ipykernel: framings, buffers, routing, stdin, control.

The helpers at the top (`Chan`, `open_chan`, ...) speak both framings with Jupyter Server's own codecs, so
what the gateway sends is checked against the decoder real clients use; the lifecycle and robustness
modules import them from here.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
from jupyter_server.services.kernels.connection.base import (
    deserialize_binary_message,
    deserialize_msg_from_ws_v1,
    serialize_binary_message,
    serialize_msg_to_ws_v1,
)
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.kernels.wire import V1_SUBPROTOCOL
from tests.support import Gateway, execute_content, new_message

FRAMINGS = [pytest.param(False, id="legacy"), pytest.param(True, id="v1")]
LEGACY_KEYS = {"channel", "msg_id", "msg_type", "header", "parent_header", "metadata", "content", "buffers"}


# -- helpers shared by the channel test modules -------------------------------------------------------
@dataclass
class Msg:
    """One message from the gateway, decoded from either framing."""

    channel: str
    header: dict[str, Any]
    parent_header: dict[str, Any]
    metadata: dict[str, Any]
    content: dict[str, Any]
    buffers: list[bytes]
    binary: bool
    raw: dict[str, Any] | None = None  # the legacy JSON object as received

    @property
    def msg_type(self) -> str:
        return str(self.header.get("msg_type", ""))

    @property
    def parent_id(self) -> str:
        return str(self.parent_header.get("msg_id", ""))


def make_message(
    msg_type: str,
    content: dict[str, Any],
    channel: str = "shell",
    *,
    session: str = "test-session",
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return new_message(msg_type, content, session, channel, metadata)


def encode_client(message: dict[str, Any], v1: bool, buffers: Sequence[bytes] = ()) -> str | bytes:
    """A client frame the way Jupyter Server's codecs (and JupyterLab) build them."""
    if v1:
        parts = [json.dumps(message[k]).encode() for k in ("header", "parent_header", "metadata", "content")]
        return bytes(serialize_msg_to_ws_v1([*parts, *buffers], message["channel"]))
    if buffers:
        return bytes(serialize_binary_message({**message, "buffers": list(buffers)}))
    return json.dumps(message)


def decode_server(data: str | bytes, v1: bool) -> Msg:
    if v1:
        assert isinstance(data, bytes), "the v1 protocol sends binary frames only"
        channel, parts = deserialize_msg_from_ws_v1(data)
        header, parent, metadata, content = (json.loads(p) if p else {} for p in parts[:4])
        return Msg(channel, header, parent, metadata, content, [bytes(b) for b in parts[4:]], True)
    if isinstance(data, bytes):
        msg = deserialize_binary_message(data)
        binary = True
    else:
        msg = json.loads(data)
        binary = False
    return Msg(
        msg["channel"],
        msg["header"],
        msg["parent_header"],
        msg["metadata"],
        msg["content"],
        [bytes(b) for b in msg.get("buffers") or []],
        binary,
        msg,
    )


class Chan:
    """A websocket to a kernel's channels speaking either framing, with buffers both ways."""

    def __init__(self, ws: ClientConnection, v1: bool) -> None:
        self.ws = ws
        self.v1 = v1
        self.session = uuid.uuid4().hex

    async def send(
        self,
        msg_type: str,
        content: dict[str, Any],
        channel: str = "shell",
        *,
        buffers: Sequence[bytes] = (),
        metadata: dict[str, Any] | None = None,
    ) -> str:
        message = make_message(msg_type, content, channel, session=self.session, metadata=metadata)
        await self.ws.send(encode_client(message, self.v1, buffers))
        return str(message["header"]["msg_id"])

    async def recv(self, limit: float = 30) -> Msg:
        return decode_server(await asyncio.wait_for(self.ws.recv(), limit), self.v1)

    async def until(self, predicate: Callable[[Msg], bool], limit: float = 30) -> Msg:
        async with asyncio.timeout(limit):
            while True:
                message = await self.recv(limit)
                if predicate(message):
                    return message

    async def collect(self, msg_id: str, limit: float = 30) -> tuple[Msg, list[Msg]]:
        """Read until the reply to msg_id and its idle status; return the reply and the iopub messages."""
        reply: Msg | None = None
        outputs: list[Msg] = []
        idle = False
        seen: list[str] = []
        try:
            async with asyncio.timeout(limit):
                while reply is None or not idle:
                    message = await self.recv(limit)
                    if message.parent_id != msg_id:
                        continue
                    seen.append(
                        f"{message.channel}/{message.msg_type}/{message.content.get('execution_state', '')}"
                    )
                    if message.msg_type.endswith("_reply"):
                        reply = message
                    elif message.msg_type == "status" and message.content.get("execution_state") == "idle":
                        idle = True
                    elif message.msg_type != "status":
                        outputs.append(message)
        except TimeoutError:
            raise AssertionError(f"no reply and idle for {msg_id} within {limit} s; got {seen}") from None
        return reply, outputs

    async def execute(self, code: str, limit: float = 30, **kwargs: Any) -> tuple[dict[str, Any], list[Msg]]:
        msg_id = await self.send("execute_request", execute_content(code, **kwargs))
        reply, outputs = await self.collect(msg_id, limit)
        return reply.content, outputs

    async def close_code(self, limit: float = 15) -> int:
        """Read (discarding) until the server closes; the close code it sent (1006 if none)."""
        async with asyncio.timeout(limit):
            try:
                while True:
                    await self.ws.recv()
            except ConnectionClosed as exc:
                return exc.rcvd.code if exc.rcvd is not None else 1006

    async def close(self) -> None:
        await self.ws.close()


async def open_chan(
    gateway: Gateway,
    kernel_id: str,
    *,
    v1: bool = False,
    session_id: str | None = None,
    subprotocols: Sequence[str] | None = None,
    **kwargs: Any,
) -> Chan:
    offered = subprotocols if subprotocols is not None else ([V1_SUBPROTOCOL] if v1 else None)
    ws = await connect(
        gateway.ws_url(kernel_id, session_id),
        subprotocols=offered,  # type: ignore[arg-type]
        max_size=None,
        open_timeout=30,
        proxy=None,
        **kwargs,
    )
    return Chan(ws, ws.subprotocol == V1_SUBPROTOCOL)


def stdout(outputs: Sequence[Msg]) -> str:
    return "".join(
        str(m.content.get("text", ""))
        for m in outputs
        if m.msg_type == "stream" and m.content.get("name") == "stdout"
    )


async def kernel_model(gateway: Gateway, kernel_id: str) -> dict[str, Any]:
    response = await gateway.client.get(f"/api/kernels/{kernel_id}")
    assert response.status_code == 200, response.text
    model: dict[str, Any] = response.json()
    return model


async def wait_connections(gateway: Gateway, kernel_id: str, expected: int, limit: float = 5) -> None:
    seen = -1
    async with asyncio.timeout(limit):
        while True:
            seen = (await kernel_model(gateway, kernel_id))["connections"]
            if seen == expected:
                return
            await asyncio.sleep(0.05)


async def wait_run(gateway: Gateway, kernel_id: str, limit: float = 30) -> None:
    """Wait (by REST) until the kernel has gone busy and back to idle: a request sent before has run."""
    async with asyncio.timeout(limit):
        while (await kernel_model(gateway, kernel_id))["execution_state"] != "busy":
            await asyncio.sleep(0.05)
        while (await kernel_model(gateway, kernel_id))["execution_state"] != "idle":
            await asyncio.sleep(0.05)


def detached_sessions(gateway: Gateway, kernel_id: str) -> int:
    """How many sessions the in-process gateway keeps for a resume on this kernel."""
    return int(gateway.app.state.kernels.get(kernel_id).hub.detached)


async def wait_detached(gateway: Gateway, kernel_id: str, expected: int, limit: float = 10) -> None:
    async with asyncio.timeout(limit):
        while detached_sessions(gateway, kernel_id) != expected:
            await asyncio.sleep(0.02)


async def expect_eventually_ok(chan: Chan, limit: float = 30) -> None:
    """Execute 1+1 until it answers 2 (the kernel may still be coming back)."""
    async with asyncio.timeout(limit):
        while True:
            msg_id = await chan.send("execute_request", execute_content("1+1"))
            try:
                reply, outputs = await chan.collect(msg_id, 5)
            except AssertionError:  # nothing within 5 s: ask again
                continue
            results = [m for m in outputs if m.msg_type == "execute_result"]
            if reply.content.get("status") == "ok" and results:
                assert results[0].content["data"]["text/plain"] == "2"
                return
            await asyncio.sleep(0.2)


# -- negotiation and round trips ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("offered", "chosen"),
    [
        pytest.param(None, None, id="none-offered"),
        pytest.param([V1_SUBPROTOCOL], V1_SUBPROTOCOL, id="v1"),
        pytest.param(["other.protocol", V1_SUBPROTOCOL], V1_SUBPROTOCOL, id="v1-among-others"),
        pytest.param(["other.protocol"], None, id="unknown-only"),
    ],
)
async def test_subprotocol_negotiation(
    gateway: Gateway, offered: list[str] | None, chosen: str | None
) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, subprotocols=offered)
    assert chan.ws.subprotocol == chosen
    reply, outputs = await chan.execute("print('negotiated')")
    assert reply["status"] == "ok"
    assert stdout(outputs) == "negotiated\n"
    await chan.close()


@pytest.mark.parametrize("v1", FRAMINGS)
async def test_execute_round_trip(gateway: Gateway, v1: bool) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=v1)
    msg_id = await chan.send("execute_request", execute_content("print('hello'); 6 * 7"))
    seen: list[Msg] = []
    async with asyncio.timeout(30):
        while not any(
            m.msg_type == "status" and m.content["execution_state"] == "idle" for m in seen
        ) or not any(m.msg_type == "execute_reply" for m in seen):
            message = await chan.recv()
            if message.parent_id == msg_id:
                seen.append(message)
    kinds = [m.msg_type for m in seen]
    assert kinds.index("status") < kinds.index("execute_input") < kinds.index("stream")
    assert kinds.index("stream") < kinds.index("execute_result")
    states = [m.content["execution_state"] for m in seen if m.msg_type == "status"]
    assert states == ["busy", "idle"]
    reply = next(m for m in seen if m.msg_type == "execute_reply")
    assert reply.channel == "shell"
    assert reply.content["status"] == "ok"
    stream = next(m for m in seen if m.msg_type == "stream")
    assert (stream.channel, stream.content) == ("iopub", {"name": "stdout", "text": "hello\n"})
    result = next(m for m in seen if m.msg_type == "execute_result")
    assert result.content["data"]["text/plain"] == "42"
    for message in seen:
        assert message.parent_header["session"] == chan.session
        assert message.buffers == []
        assert not message.binary or v1  # legacy frames without buffers are text
    await chan.close()


async def test_legacy_message_shape(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id)
    msg_id = await chan.send("execute_request", execute_content("'shape'"), metadata={"cellId": "c1"})
    reply, outputs = await chan.collect(msg_id)
    for message in [reply, *outputs]:
        raw = message.raw
        assert raw is not None
        assert set(raw) == LEGACY_KEYS, raw.keys()
        assert raw["msg_id"] == raw["header"]["msg_id"]
        assert raw["msg_type"] == raw["header"]["msg_type"]
        assert raw["parent_header"]["msg_id"] == msg_id
        assert raw["buffers"] == []
        assert isinstance(raw["metadata"], dict)
        assert raw["header"]["session"]
        assert raw["header"]["date"].endswith(("Z", "+00:00"))
    assert reply.raw is not None
    assert reply.raw["channel"] == "shell"
    assert {m.raw["channel"] for m in outputs if m.raw} == {"iopub"}
    await chan.close()


async def test_v1_frames_name_their_channel(gateway: Gateway) -> None:
    """Every v1 frame carries its channel; parts are the kernel's JSON as-is (dates, versions)."""
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=True)
    assert chan.ws.subprotocol == V1_SUBPROTOCOL
    info_id = await chan.send("kernel_info_request", {})
    reply = await chan.until(lambda m: m.parent_id == info_id and m.msg_type == "kernel_info_reply")
    assert reply.channel == "shell"
    assert reply.header["version"].startswith("5.")
    assert reply.content["language_info"]["name"] == "python"
    # A text frame is not part of the v1 protocol: the server never sends one.
    exec_id = await chan.send("execute_request", execute_content("print('x')"))
    async with asyncio.timeout(30):
        while True:
            data = await chan.ws.recv()
            assert isinstance(data, bytes)
            message = decode_server(data, True)
            if message.parent_id == exec_id and message.msg_type == "status":
                assert message.channel == "iopub"
                if message.content["execution_state"] == "idle":
                    break
    await chan.close()


# -- binary buffers ------------------------------------------------------------------------------------
@pytest.mark.parametrize("v1", FRAMINGS)
async def test_kernel_buffers_reach_the_client(gateway: Gateway, v1: bool) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=v1)
    code = (
        "from comm import create_comm\n"
        "c = create_comm(target_name='t', data={'a': 1}, buffers=[b'xyz', bytes(range(256))])\n"
        "c.send({'b': 2}, buffers=[b'\\x00' * 70000])\n"
    )
    msg_id = await chan.send("execute_request", execute_content(code))
    reply, outputs = await chan.collect(msg_id)
    assert reply.content["status"] == "ok", reply.content
    opened = next(m for m in outputs if m.msg_type == "comm_open")
    assert opened.channel == "iopub"
    assert opened.binary  # legacy: Jupyter Server's binary framing; v1: extra parts
    assert opened.content["target_name"] == "t"
    assert opened.content["data"] == {"a": 1}
    assert opened.buffers == [b"xyz", bytes(range(256))]
    sent = next(m for m in outputs if m.msg_type == "comm_msg")
    assert sent.content["data"] == {"b": 2}
    assert sent.content["comm_id"] == opened.content["comm_id"]
    assert sent.buffers == [b"\x00" * 70000]
    if not v1:
        assert opened.raw is not None
        assert opened.raw["msg_id"] == opened.header["msg_id"]
        assert opened.raw["parent_header"]["msg_id"] == msg_id
    await chan.close()


ECHO_TARGET = (
    "received = []\n"
    "def _echo(comm, msg):\n"
    "    received.append([bytes(b) for b in msg['buffers']])\n"
    "    comm.send({'echo': len(msg['buffers'])}, buffers=[bytes(b)[::-1] for b in msg['buffers']])\n"
    "get_ipython().kernel.comm_manager.register_target('echo', _echo)\n"
)


@pytest.mark.parametrize("v1", FRAMINGS)
async def test_client_buffers_reach_the_kernel(gateway: Gateway, v1: bool) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=v1)
    reply, _ = await chan.execute(ECHO_TARGET)
    assert reply["status"] == "ok", reply
    comm_id = uuid.uuid4().hex
    payload = [b"abc", bytes(range(256)), b"\xff" * 100_000]
    await chan.send("comm_open", {"comm_id": comm_id, "target_name": "echo", "data": {}}, buffers=payload)
    echo = await chan.until(lambda m: m.msg_type == "comm_msg" and m.content.get("comm_id") == comm_id)
    assert echo.content["data"] == {"echo": 3}
    assert echo.buffers == [b[::-1] for b in payload]
    reply, outputs = await chan.execute("print([len(b) for b in received[0]], received[0][:2])")
    assert reply["status"] == "ok", reply
    assert stdout(outputs) == f"[3, 256, 100000] {payload[:2]!r}\n"
    await chan.close()


# -- routing between connections -----------------------------------------------------------------------
async def test_iopub_is_broadcast_and_replies_go_to_the_requester(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    a = await open_chan(gateway, kernel_id, v1=False)
    b = await open_chan(gateway, kernel_id, v1=True)
    c = await open_chan(gateway, kernel_id, v1=True)
    a_id = await a.send("execute_request", execute_content("print('to everyone')"))
    a_reply, a_outputs = await a.collect(a_id)
    assert a_reply.content["status"] == "ok"
    assert stdout(a_outputs) == "to everyone\n"
    for other in (b, c):
        stream = await other.until(lambda m: m.parent_id == a_id and m.msg_type == "stream")
        assert stream.content["text"] == "to everyone\n"
        await other.until(
            lambda m: (
                m.parent_id == a_id and m.msg_type == "status" and m.content["execution_state"] == "idle"
            )
        )
    # b runs its own request; by the time its round trip is done, a's reply would have been seen.
    b_id = await b.send("execute_request", execute_content("print('from b')"))
    seen_by_b: list[Msg] = []
    async with asyncio.timeout(30):
        while True:
            message = await b.recv()
            seen_by_b.append(message)
            if message.parent_id == b_id and message.msg_type == "execute_reply":
                break
    assert not [m for m in seen_by_b if m.parent_id == a_id and m.channel == "shell"]
    # a sees b's output (broadcast) but not b's reply
    seen_by_a: list[Msg] = []
    async with asyncio.timeout(30):
        while True:
            message = await a.recv()
            seen_by_a.append(message)
            if (
                message.parent_id == b_id
                and message.msg_type == "status"
                and message.content["execution_state"] == "idle"
            ):
                break
    assert stdout([m for m in seen_by_a if m.parent_id == b_id]) == "from b\n"
    c_id = await c.send("kernel_info_request", {})
    await c.until(lambda m: m.parent_id == c_id and m.msg_type == "kernel_info_reply")
    final_id = await a.send("kernel_info_request", {})
    rest = [await a.until(lambda m: m.parent_id == final_id and m.msg_type == "kernel_info_reply")]
    assert not [m for m in seen_by_a + rest if m.channel == "shell" and m.parent_id in (b_id, c_id)]
    for chan in (a, b, c):
        await chan.close()


async def test_connections_are_counted(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    assert (await kernel_model(gateway, kernel_id))["connections"] == 0
    a = await open_chan(gateway, kernel_id)
    await wait_connections(gateway, kernel_id, 1)
    b = await open_chan(gateway, kernel_id, v1=True)
    c = await open_chan(gateway, kernel_id, session_id="same")
    d = await open_chan(gateway, kernel_id, session_id="same")  # two tabs, one session id
    await wait_connections(gateway, kernel_id, 4)
    listed = (await gateway.client.get("/api/kernels")).json()
    assert [k["connections"] for k in listed if k["id"] == kernel_id] == [4]
    await a.close()
    await wait_connections(gateway, kernel_id, 3)
    await c.close()
    await wait_connections(gateway, kernel_id, 2)
    b.ws.transport.abort()  # dropped without a close handshake
    await wait_connections(gateway, kernel_id, 1)
    await d.close()
    await wait_connections(gateway, kernel_id, 0)


async def test_two_sockets_with_one_session_id_are_independent(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    first = await open_chan(gateway, kernel_id, session_id="shared-tab")
    second = await open_chan(gateway, kernel_id, v1=True, session_id="shared-tab")
    one = await first.send("execute_request", execute_content("'first'"))
    two = await second.send("execute_request", execute_content("'second'"))
    reply_one, out_one = await first.collect(one)
    reply_two, out_two = await second.collect(two)
    assert reply_one.content["status"] == reply_two.content["status"] == "ok"
    assert [m.content["data"]["text/plain"] for m in out_one if m.msg_type == "execute_result"] == ["'first'"]
    assert [m.content["data"]["text/plain"] for m in out_two if m.msg_type == "execute_result"] == [
        "'second'"
    ]
    await first.close()
    # the second keeps working after the first one left
    reply, outputs = await second.execute("print('still here')")
    assert reply["status"] == "ok"
    assert stdout(outputs) == "still here\n"
    await second.close()


# -- stdin and control -----------------------------------------------------------------------------------
@pytest.mark.parametrize("v1", FRAMINGS)
async def test_stdin_input_round_trip(gateway: Gateway, v1: bool) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=v1)
    bystander = await open_chan(gateway, kernel_id, v1=not v1)
    msg_id = await chan.send(
        "execute_request", execute_content("x = input('name? ')\nprint('hello', x)", allow_stdin=True)
    )
    request = await chan.until(lambda m: m.msg_type == "input_request")
    assert request.channel == "stdin"
    assert request.parent_id == msg_id
    assert request.content["prompt"] == "name? "
    assert request.content["password"] is False
    await chan.send("input_reply", {"value": "fastkg"}, channel="stdin")
    reply, outputs = await chan.collect(msg_id)
    assert reply.content["status"] == "ok", reply.content
    assert stdout(outputs) == "hello fastkg\n"
    # the other connection saw the output (iopub) but never the stdin request
    seen: list[Msg] = []
    async with asyncio.timeout(30):
        while not (
            seen and seen[-1].parent_id == msg_id and seen[-1].content.get("execution_state") == "idle"
        ):
            seen.append(await bystander.recv())
    assert stdout([m for m in seen if m.parent_id == msg_id]) == "hello fastkg\n"
    assert not [m for m in seen if m.channel == "stdin"]
    await chan.close()
    await bystander.close()


async def test_input_without_allow_stdin_fails_cleanly(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=True)
    reply, _ = await chan.execute("input('x')")
    assert reply["status"] == "error"
    assert reply["ename"] == "StdinNotImplementedError"


@pytest.mark.parametrize("v1", FRAMINGS)
async def test_control_channel_kernel_info(gateway: Gateway, v1: bool) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=v1)
    msg_id = await chan.send("kernel_info_request", {}, channel="control")
    reply = await chan.until(lambda m: m.parent_id == msg_id and m.msg_type == "kernel_info_reply", 15)
    assert reply.channel == "control"
    assert reply.content["status"] == "ok"
    assert reply.content["implementation"] == "ipython"
    assert reply.content["protocol_version"].startswith("5.")
    await chan.close()


async def test_control_answers_while_shell_is_busy(gateway: Gateway) -> None:
    kernel_id = await gateway.start_kernel()
    chan = await open_chan(gateway, kernel_id, v1=True)
    code = "import time; print('sleeping', flush=True); time.sleep(20)"
    busy = await chan.send("execute_request", execute_content(code))
    # Running user code, so the interrupt below cannot land before the execution starts.
    await chan.until(lambda m: m.parent_id == busy and m.content.get("text") == "sleeping\n")
    info = await chan.send("kernel_info_request", {}, channel="control")
    seen: list[Msg] = []
    async with asyncio.timeout(15):
        while not (seen and seen[-1].parent_id == info and seen[-1].msg_type == "kernel_info_reply"):
            seen.append(await chan.recv())
    assert seen[-1].channel == "control"
    assert not [m for m in seen if m.parent_id == busy and m.msg_type == "execute_reply"]
    response = await gateway.client.post(f"/api/kernels/{kernel_id}/interrupt")
    assert response.status_code == 204
    done, _ = await chan.collect(busy, 10)
    assert done.content["ename"] == "KeyboardInterrupt"
    await chan.close()

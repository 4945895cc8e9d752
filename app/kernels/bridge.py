"""WebSocket <-> ZMQ relay: per-client channel sessions with one writer, bounded buffers and replay.

A `ChannelSession` belongs to one websocket `session_id`. It owns DEALER sockets for shell, control and
stdin (sharing one identity so the kernel can route stdin), receives the kernel's iopub broadcast from
the `ChannelHub`, and queues everything for exactly one writer task. When its websocket goes away the
hub (app/kernels/hub.py) closes it, or keeps it detached, still collecting (boundedly), so a reconnect
with the same `session_id` gets the missed messages first. Well-formed client messages on a channel
other than shell, control or stdin are logged and dropped, as in Jupyter Server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from app.kernels.channels import Channel, ChannelFull, ChannelUnavailable
from app.kernels.wire import (
    V1_SUBPROTOCOL,
    ClientMessage,
    KernelMessage,
    WireError,
    decode_legacy_binary,
    decode_legacy_text,
    decode_v1,
    encode_legacy,
    encode_v1,
    reply_type,
)

if TYPE_CHECKING:
    from app.kernels.hub import ChannelHub
    from app.kernels.kernel import Kernel

log = logging.getLogger(__name__)

CLIENT_CHANNELS = frozenset({"shell", "control", "stdin"})  # iopub is the kernel's broadcast
MAX_MESSAGE_BYTES = 10 * 1024 * 1024
MAX_BUFFERED_BYTES = 64 * 1024 * 1024
MAX_PENDING_REQUESTS = 4096
CLOSE_NORMAL = 1000
CLOSE_UNSUPPORTED = 1003
CLOSE_INVALID = 1007
CLOSE_POLICY = 1008
CLOSE_TOO_BIG = 1009
CLOSE_TRY_AGAIN = 1013


class WebSocketLike(Protocol):
    """The part of a Starlette WebSocket the relay needs."""

    async def receive(self) -> Mapping[str, Any]: ...

    async def send_text(self, data: str) -> None: ...

    async def send_bytes(self, data: bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str | None = None) -> None: ...


class ChannelSession:
    """The kernel side of one client session: its sockets, in-flight requests and outbox.

    `session_id` is the client's (None when it named none: such a session cannot be resumed).
    Shell and stdin are connected at once (stdin must be there before the kernel asks for input);
    control, rarely used, on its first message.
    """

    def __init__(self, hub: ChannelHub, session_id: str | None) -> None:
        self.hub = hub
        self.kernel = hub.kernel
        self.session_id = session_id
        self._identity = uuid.uuid4().hex.encode()
        self._channels: dict[str, Channel] = {}
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}
        self._outbox: deque[KernelMessage] = deque()
        self._outbox_bytes = 0
        self._wakeup = asyncio.Event()
        self.websocket: WebSocketLike | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self.closed = False
        try:
            for name in ("shell", "stdin"):
                self._channel(name)
        except ChannelUnavailable:
            self.close()
            raise

    def _channel(self, name: str) -> Channel:
        channel = self._channels.get(name)
        if channel is None:
            info = self.kernel.connection_info
            channel = Channel(self.kernel.context, info, name, self._receiver(name), self._identity)
            self._channels[name] = channel
        return channel

    def reconnect(self) -> None:
        """The kernel moved (a restart gave it a new address): the same identity, new sockets."""
        if self.closed:
            return
        names = list(self._channels)
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for name in names:
            self._channel(name)

    # -- from the kernel ------------------------------------------------------------------------
    def _receiver(self, channel: str) -> Callable[[list[bytes]], None]:
        def receive(frames: list[bytes]) -> None:
            message = self.kernel.decode(frames, channel)
            if message is None:
                return
            if channel != "stdin" and self._pending:
                self._pending.pop(message.parent_id, None)
            self.push(message)
            if self.websocket is None:
                self.hub.trim()

        return receive

    def push(self, message: KernelMessage) -> None:
        """Queue a message for the client; bounded, so a slow or absent reader cannot exhaust memory."""
        self._outbox.append(message)
        self._outbox_bytes += message.size
        if self._outbox_bytes > MAX_BUFFERED_BYTES:
            if self.websocket is not None:
                log.warning("session %s reads too slowly; disconnecting it", self.session_id)
                self._close_websocket(CLOSE_TRY_AGAIN, "client too slow")
            self.drop_oldest(self._outbox_bytes - MAX_BUFFERED_BYTES)
        self._wakeup.set()

    @property
    def buffered(self) -> int:
        """Bytes of messages waiting for the client."""
        return self._outbox_bytes

    def drop_oldest(self, nbytes: int) -> int:
        """Forget the oldest waiting messages until `nbytes` are freed (or none are left); bytes freed."""
        freed = 0
        while freed < nbytes and self._outbox:
            freed += self._outbox.popleft().size
        self._outbox_bytes -= freed
        return freed

    def fail_pending(self, reason: str) -> None:
        """End every in-flight request with an error reply, so no client waits forever on a dead kernel."""
        for channel, header in self._pending.values():
            content = {"status": "error", "ename": "KernelDied", "evalue": reason, "traceback": []}
            self.push(self.kernel.synthetic(channel, reply_type(header.get("msg_type", "")), content, header))
            idle = self.kernel.synthetic("iopub", "status", {"execution_state": "idle"}, header)
            self.push(idle)
        self._pending.clear()

    # -- from the client ------------------------------------------------------------------------
    def send(self, message: ClientMessage) -> None:
        if message.channel in ("shell", "control") and message.msg_type.endswith("_request"):
            if len(self._pending) >= MAX_PENDING_REQUESTS:
                # Requests a kernel never answers must not accumulate: forget the oldest.
                del self._pending[next(iter(self._pending))]
            self._pending[message.msg_id] = (message.channel, message.header)
        self.kernel.send(self._channel(message.channel), message.parts, message.buffers)

    # -- the one writer -------------------------------------------------------------------------
    async def write(self, websocket: WebSocketLike, v1: bool) -> None:
        """Drain the outbox to the websocket until cancelled; the only task that sends on it."""
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._outbox and self.websocket is websocket:
                message = self._outbox.popleft()
                self._outbox_bytes -= message.size
                if v1:
                    await websocket.send_bytes(encode_v1(message.channel, message.parts))
                    continue
                frame = encode_legacy(
                    message.channel, message.parts[0], message.msg_id, message.msg_type, message.parts
                )
                if isinstance(frame, str):
                    await websocket.send_text(frame)
                else:
                    await websocket.send_bytes(frame)

    def attach(self, websocket: WebSocketLike) -> None:
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self.websocket = websocket
        self._wakeup.set()

    def detach(self, keep_seconds: float, on_expire: Callable[[ChannelSession], None]) -> None:
        """Wait (still collecting) for a reconnect with the same session_id, up to `keep_seconds`."""
        self.websocket = None
        self._expiry = asyncio.get_running_loop().call_later(keep_seconds, on_expire, self)

    def _close_websocket(self, code: int, reason: str) -> None:
        websocket = self.websocket
        if websocket is not None:
            self.websocket = None
            task = asyncio.get_running_loop().create_task(_close_quietly(websocket, code, reason))
            self.hub.own(task)

    def close(self) -> None:
        """Close the sockets to the kernel (and the websocket, if any) and forget what was waiting."""
        if self.closed:
            return
        self.closed = True
        if self._expiry is not None:
            self._expiry.cancel()
            self._expiry = None
        self._close_websocket(CLOSE_NORMAL, "kernel shut down")
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        self._outbox.clear()
        self._outbox_bytes = 0
        self._pending.clear()


async def _close_quietly(websocket: WebSocketLike, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code, reason)


def decode_client_frame(message: Mapping[str, Any], v1: bool) -> ClientMessage:
    """Decode one websocket frame per the negotiated protocol; raises WireError with a close code."""
    text, data = message.get("text"), message.get("bytes")
    size = len(text) if text is not None else len(data or b"")
    if size > MAX_MESSAGE_BYTES:
        raise FrameRejected(CLOSE_TOO_BIG, "message too big")
    try:
        if data is not None:
            return decode_v1(data) if v1 else decode_legacy_binary(data)
        if text is None:
            raise WireError("empty frame")
        if v1:
            raise FrameRejected(CLOSE_UNSUPPORTED, "the v1 protocol takes binary frames only")
        return decode_legacy_text(text)
    except WireError as exc:
        raise FrameRejected(CLOSE_INVALID, str(exc)[:120]) from exc


class FrameRejected(Exception):
    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


async def relay(
    kernel: Kernel, websocket: WebSocketLike, session_id: str | None, subprotocol: str | None
) -> None:
    """Serve one accepted websocket until it closes or the kernel goes away."""
    v1 = subprotocol == V1_SUBPROTOCOL
    try:
        session = kernel.hub.checkout(session_id, websocket)
    except ChannelUnavailable as exc:
        log.error("refusing a websocket of kernel %s: %s", kernel.id, exc)
        await _close_quietly(websocket, CLOSE_TRY_AGAIN, "the gateway cannot open more kernel sockets")
        return
    writer = asyncio.create_task(session.write(websocket, v1), name=f"ws-writer-{session_id}")
    dropped = 0
    try:
        while session.websocket is websocket:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            try:
                message = decode_client_frame(frame, v1)
                if message.channel not in CLIENT_CHANNELS:
                    # Jupyter Server logs "No such channel" and drops it; the client's other requests go on
                    log_drop = log.warning if dropped == 0 else log.debug
                    log_drop(
                        "dropping a client message on channel %.40r for kernel %s", message.channel, kernel.id
                    )
                    dropped += 1
                    continue
                session.send(message)
            except FrameRejected as exc:
                log.info("closing websocket of kernel %s: %s", kernel.id, exc.reason)
                await _close_quietly(websocket, exc.code, exc.reason)
                break
            except (ChannelFull, ChannelUnavailable) as exc:
                log.warning("closing websocket of kernel %s: %s", kernel.id, exc)
                await _close_quietly(websocket, CLOSE_TRY_AGAIN, "the kernel is not taking messages")
                break
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        kernel.hub.release(session)

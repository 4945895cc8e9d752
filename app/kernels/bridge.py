"""WebSocket <-> ZMQ relay: per-client channel sessions with one writer, bounded buffers and replay.

A `ChannelSession` belongs to one websocket `session_id`. It owns DEALER sockets for shell, control and
stdin (sharing one identity so the kernel can route stdin), receives the kernel's iopub broadcast from
the `ChannelHub`, and queues everything for exactly one writer task. When its websocket goes away it is
kept, detached, for `replay_seconds`, still collecting (boundedly); a reconnect with the same
`session_id` gets the missed messages first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from app.kernels.channels import Channel, ChannelFull
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
    from app.kernels.kernel import Kernel

log = logging.getLogger(__name__)

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
    """The kernel side of one client session: its sockets, in-flight requests and outbox."""

    def __init__(self, kernel: Kernel, session_id: str) -> None:
        self.kernel = kernel
        self.session_id = session_id
        identity = uuid.uuid4().hex.encode()
        info = kernel.connection_info
        self._channels = {
            name: Channel(kernel.context, info, name, self._receiver(name), identity)
            for name in ("shell", "control", "stdin")
        }
        self._pending: dict[str, tuple[str, dict[str, Any]]] = {}
        self._outbox: deque[KernelMessage] = deque()
        self._outbox_bytes = 0
        self._wakeup = asyncio.Event()
        self.websocket: WebSocketLike | None = None
        self._expiry: asyncio.TimerHandle | None = None
        self.closed = False

    # -- from the kernel ------------------------------------------------------------------------
    def _receiver(self, channel: str) -> Callable[[list[bytes]], None]:
        def receive(frames: list[bytes]) -> None:
            message = self.kernel.decode(frames, channel)
            if message is None:
                return
            if channel != "stdin" and self._pending:
                self._pending.pop(message.parent_id, None)
            self.push(message)

        return receive

    def push(self, message: KernelMessage) -> None:
        """Queue a message for the client; bounded, so a slow or absent reader cannot exhaust memory."""
        self._outbox.append(message)
        self._outbox_bytes += message.size
        if self._outbox_bytes > MAX_BUFFERED_BYTES:
            if self.websocket is not None:
                log.warning("session %s reads too slowly; disconnecting it", self.session_id)
                self._close_websocket(CLOSE_TRY_AGAIN, "client too slow")
            while self._outbox_bytes > MAX_BUFFERED_BYTES and self._outbox:
                self._outbox_bytes -= self._outbox.popleft().size
        self._wakeup.set()

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
        self.kernel.send(self._channels[message.channel], message.parts, message.buffers)

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

    @property
    def detached(self) -> bool:
        """Waiting for a reconnect with the same session_id (or for expiry)."""
        return self._expiry is not None

    def detach(self, keep_seconds: float, on_expire: Any) -> None:
        self.websocket = None
        if keep_seconds > 0:
            self._expiry = asyncio.get_running_loop().call_later(keep_seconds, on_expire, self)
        else:
            on_expire(self)

    def _close_websocket(self, code: int, reason: str) -> None:
        websocket = self.websocket
        if websocket is not None:
            self.websocket = None
            task = asyncio.get_running_loop().create_task(_close_quietly(websocket, code, reason))
            self.kernel.hub.own(task)

    async def close(self) -> None:
        self.closed = True
        if self._expiry is not None:
            self._expiry.cancel()
        self._close_websocket(CLOSE_NORMAL, "kernel shut down")
        for channel in self._channels.values():
            channel.close()


async def _close_quietly(websocket: WebSocketLike, code: int, reason: str) -> None:
    with contextlib.suppress(Exception):
        await websocket.close(code, reason)


class ChannelHub:
    """All client sessions of one kernel: iopub fan-out, lifecycle notices, replay bookkeeping."""

    def __init__(self, kernel: Kernel, *, replay_seconds: float) -> None:
        self.kernel = kernel
        self.replay_seconds = replay_seconds
        self._sessions: dict[str, ChannelSession] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def connections(self) -> int:
        return sum(1 for s in self._sessions.values() if s.websocket is not None)

    def own(self, task: asyncio.Task[None]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_iopub(self, message: KernelMessage) -> None:
        for session in self._sessions.values():
            session.push(message)

    def on_lifecycle(self, event: str) -> None:
        if event in ("restarting", "dead"):
            for session in self._sessions.values():
                session.push(self.kernel.synthetic("iopub", "status", {"execution_state": event}))
                session.fail_pending(f"the kernel died ({event})")
        elif event == "restarted":
            for session in self._sessions.values():
                session.fail_pending("the kernel was restarted")

    def checkout(self, session_id: str, websocket: WebSocketLike) -> ChannelSession:
        """The session for a new websocket: the detached one with this id (replay), else a new one."""
        session = self._sessions.get(session_id)
        if session is None or session.websocket is not None:
            key = session_id if session is None else f"{session_id}/{uuid.uuid4().hex}"
            session = ChannelSession(self.kernel, session_id)
            self._sessions[key] = session
        session.attach(websocket)
        return session

    def release(self, session: ChannelSession) -> None:
        if not session.closed and not session.detached:
            session.detach(self.replay_seconds, self._expire)

    def _expire(self, session: ChannelSession) -> None:
        for key, value in list(self._sessions.items()):
            if value is session:
                del self._sessions[key]
        self.own(asyncio.get_running_loop().create_task(session.close()))

    async def close(self) -> None:
        sessions = list(self._sessions.values())
        self._sessions.clear()
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2)


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


async def relay(kernel: Kernel, websocket: WebSocketLike, session_id: str, subprotocol: str | None) -> None:
    """Serve one accepted websocket until it closes or the kernel goes away."""
    v1 = subprotocol == V1_SUBPROTOCOL
    session = kernel.hub.checkout(session_id, websocket)
    writer = asyncio.create_task(session.write(websocket, v1), name=f"ws-writer-{session_id}")
    try:
        while session.websocket is websocket:
            frame = await websocket.receive()
            if frame["type"] == "websocket.disconnect":
                break
            try:
                session.send(decode_client_frame(frame, v1))
            except FrameRejected as exc:
                log.info("closing websocket of kernel %s: %s", kernel.id, exc.reason)
                await _close_quietly(websocket, exc.code, exc.reason)
                break
            except ChannelFull as exc:
                log.warning("closing websocket of kernel %s: %s", kernel.id, exc)
                await _close_quietly(websocket, CLOSE_TRY_AGAIN, "the kernel is not taking messages")
                break
    finally:
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await writer
        if session.websocket is websocket or session.websocket is None:
            kernel.hub.release(session)

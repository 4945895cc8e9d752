"""The only module that touches ZMQ: sockets to a kernel's channels, read from the event loop by callback.

A `Channel` registers its socket's file descriptor with the running loop and, when it becomes readable,
drains waiting messages in bounded batches straight into a callback: no Future or task per message, and
no message starves the loop. ZMQ signals edge-triggered, so every send schedules another drain.
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections.abc import Callable
from typing import Any

import zmq

log = logging.getLogger(__name__)

_SOCKET_TYPES = {"shell": zmq.DEALER, "control": zmq.DEALER, "stdin": zmq.DEALER, "iopub": zmq.SUB}
BATCH = 64

FrameHandler = Callable[[list[bytes]], None]


class ChannelFull(Exception):
    """The kernel is not taking messages (its queue is full)."""


class ChannelUnavailable(Exception):
    """No socket to the kernel could be opened (out of file descriptors or zmq sockets)."""


def new_context() -> zmq.Context[Any]:
    """A private ZMQ context for one gateway (destroyed on shutdown).

    libzmq allows 1023 sockets per context by default: with two or three per websocket that would cap
    the whole gateway at a few hundred connections ("Too many open files" from zmq, not from the OS).
    The process's file limit is the real bound: each socket holds at least two descriptors (its mailbox
    and its connection), so the context may hold half as many sockets as the process may open files, and
    running out shows as a refused socket (ChannelUnavailable) rather than somewhere inside libzmq.
    """
    context: zmq.Context[Any] = zmq.Context()
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    files = soft if soft != resource.RLIM_INFINITY else 1 << 30
    wanted = min(files // 2, context.get(zmq.SOCKET_LIMIT))
    context.set(zmq.MAX_SOCKETS, max(wanted, context.get(zmq.MAX_SOCKETS)))
    return context


def channel_url(info: dict[str, Any], channel: str) -> str:
    transport = info.get("transport", "tcp")
    port = info[f"{channel}_port"]
    if transport == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"{transport}://{info['ip']}:{port}"


def _connect(context: zmq.Context[Any], info: dict[str, Any], name: str, identity: bytes | None) -> Any:
    try:
        socket = context.socket(_SOCKET_TYPES[name])
    except zmq.ZMQError as exc:
        raise ChannelUnavailable(f"cannot open a {name} socket: {exc}") from None
    try:
        socket.setsockopt(zmq.LINGER, 0)
        if name == "iopub":
            socket.setsockopt(zmq.SUBSCRIBE, b"")
            socket.setsockopt(zmq.RCVHWM, 0)
        elif identity is not None:
            socket.setsockopt(zmq.IDENTITY, identity)
        socket.connect(channel_url(info, name))
    except zmq.ZMQError as exc:
        socket.close(linger=0)
        raise ChannelUnavailable(f"cannot connect a {name} socket: {exc}") from None
    return socket


class Channel:
    """One socket connected to one kernel channel; DEALERs share `identity` so stdin finds its shell."""

    def __init__(
        self,
        context: zmq.Context[Any],
        info: dict[str, Any],
        name: str,
        on_frames: FrameHandler,
        identity: bytes | None = None,
    ) -> None:
        self.name = name
        self._on_frames = on_frames
        self._socket = _connect(context, info, name, identity)
        self._loop = asyncio.get_running_loop()
        self._fd = self._socket.getsockopt(zmq.FD)
        self._loop.add_reader(self._fd, self._drain)
        self._scheduled = False
        self._closed = False
        self._schedule()

    def send(self, frames: list[bytes]) -> None:
        """Queue a multipart message to the kernel without blocking."""
        try:
            self._socket.send_multipart(frames, zmq.NOBLOCK)
        except zmq.Again:
            raise ChannelFull(f"the kernel's {self.name} channel is full") from None
        self._schedule()

    def _schedule(self) -> None:
        if not self._scheduled and not self._closed:
            self._scheduled = True
            self._loop.call_soon(self._drain)

    def _drain(self) -> None:
        self._scheduled = False
        socket = self._socket
        for _ in range(BATCH):
            if self._closed:
                return
            try:
                frames = socket.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError as exc:
                log.warning("%s channel read failed: %s", self.name, exc)
                return
            try:
                self._on_frames(frames)
            except Exception:
                log.exception("error handling a %s message", self.name)
        self._schedule()  # more may be waiting: let other callbacks run first

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._fd)
        self._socket.close(linger=0)

"""The only module that touches ZMQ: sockets to a kernel's channels, read from the event loop by callback.

A `Channel` registers its socket's file descriptor with the running loop and, when it becomes readable,
drains waiting messages in bounded batches straight into a callback: no Future or task per message, and
no message starves the loop. ZMQ signals edge-triggered, so every send schedules another drain.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import zmq

log = logging.getLogger(__name__)

_SOCKET_TYPES = {"shell": zmq.DEALER, "control": zmq.DEALER, "stdin": zmq.DEALER, "iopub": zmq.SUB}
BATCH = 64

FrameHandler = Callable[[list[bytes]], None]


class ChannelFull(Exception):
    """The kernel is not taking messages (its queue is full)."""


def new_context() -> zmq.Context[Any]:
    """A private ZMQ context for one gateway (destroyed on shutdown)."""
    return zmq.Context()


def channel_url(info: dict[str, Any], channel: str) -> str:
    transport = info.get("transport", "tcp")
    port = info[f"{channel}_port"]
    if transport == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"{transport}://{info['ip']}:{port}"


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
        self._socket = context.socket(_SOCKET_TYPES[name])
        self._socket.setsockopt(zmq.LINGER, 0)
        if name == "iopub":
            self._socket.setsockopt(zmq.SUBSCRIBE, b"")
            self._socket.setsockopt(zmq.RCVHWM, 0)
        elif identity is not None:
            self._socket.setsockopt(zmq.IDENTITY, identity)
        self._socket.connect(channel_url(info, name))
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

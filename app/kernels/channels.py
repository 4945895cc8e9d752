"""The only module that opens ZMQ sockets: one function per kind of connection to a kernel's channels."""

from __future__ import annotations

from typing import Any

import zmq
import zmq.asyncio

_SOCKET_TYPES = {"shell": zmq.DEALER, "control": zmq.DEALER, "stdin": zmq.DEALER, "iopub": zmq.SUB}


def new_context() -> zmq.asyncio.Context:
    """A private ZMQ context for one gateway (closed on shutdown)."""
    return zmq.asyncio.Context()


def channel_url(info: dict[str, Any], channel: str) -> str:
    transport = info.get("transport", "tcp")
    port = info[f"{channel}_port"]
    if transport == "ipc":
        return f"ipc://{info['ip']}-{port}"
    return f"{transport}://{info['ip']}:{port}"


def open_channel(
    context: zmq.asyncio.Context, info: dict[str, Any], channel: str, identity: bytes | None = None
) -> zmq.asyncio.Socket:
    """Connect one socket to a kernel channel. DEALERs share `identity` so stdin finds its shell peer."""
    socket = context.socket(_SOCKET_TYPES[channel])
    socket.setsockopt(zmq.LINGER, 0)
    if channel == "iopub":
        socket.setsockopt(zmq.SUBSCRIBE, b"")
        socket.setsockopt(zmq.RCVHWM, 0)
    elif identity is not None:
        socket.setsockopt(zmq.IDENTITY, identity)
    socket.connect(channel_url(info, channel))
    return socket

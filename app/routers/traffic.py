"""Counting kernel websocket frames at the transport edge, so the relay itself stays unaware of metrics."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import WebSocket

from app.state import WebSocketTraffic


class CountedWebSocket:
    """The WebSocketLike the relay needs, counting frames each way into the gateway's traffic."""

    def __init__(self, websocket: WebSocket, traffic: WebSocketTraffic) -> None:
        self.websocket = websocket
        self.traffic = traffic
        traffic.connections += 1

    async def receive(self) -> Mapping[str, Any]:
        message = await self.websocket.receive()
        if message["type"] == "websocket.receive":
            self.traffic.to_kernel += 1
        return message

    async def send_text(self, data: str) -> None:
        self.traffic.to_client += 1
        await self.websocket.send_text(data)

    async def send_bytes(self, data: bytes) -> None:
        self.traffic.to_client += 1
        await self.websocket.send_bytes(data)

    async def close(self, code: int = 1000, reason: str | None = None) -> None:
        await self.websocket.close(code, reason)

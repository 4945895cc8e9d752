"""A request id per HTTP request and websocket: the client's `X-Request-Id` when it is sane, else a new
one; returned in the response and attached to every log record written while the request runs."""

from __future__ import annotations

import re
import uuid

from app.http.asgi import ASGIApp, Message, Receive, Scope, Send, header
from app.logs import request_id

HEADER = b"x-request-id"
_RESPONSE_STARTS = ("http.response.start", "websocket.http.response.start", "websocket.accept")
_SANE = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def choose_request_id(presented: str | None) -> str:
    """Keep a client's id only if it is short and plain (it is logged and echoed)."""
    if presented is not None and _SANE.fullmatch(presented):
        return presented
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        value = choose_request_id(header(scope, HEADER))
        token = request_id.set(value)

        async def send_with_id(message: Message) -> None:
            if message["type"] in (
                "http.response.start",
                "websocket.http.response.start",
                "websocket.accept",
            ):
                message["headers"] = [*message.get("headers", []), (HEADER, value.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)

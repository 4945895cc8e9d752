"""Kernel Gateway's CORS: the configured KG_ALLOW_* headers on every response, answered preflights, and
refusal of cross-origin requests (REST and WebSocket) from origins that are not allowed."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from app.asgi import ASGIApp, Message, Receive, Scope, Send, header, send_error
from app.config import Settings


@dataclass(frozen=True)
class CorsPolicy:
    allow_origin: str = ""
    allow_credentials: str = ""
    allow_headers: str = ""
    allow_methods: str = ""
    expose_headers: str = ""
    max_age: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy:
        return cls(
            settings.allow_origin,
            settings.allow_credentials,
            settings.allow_headers,
            settings.allow_methods,
            settings.expose_headers,
            settings.max_age,
        )

    def headers(self) -> list[tuple[bytes, bytes]]:
        pairs = [
            (b"access-control-allow-origin", self.allow_origin),
            (b"access-control-allow-credentials", self.allow_credentials),
            (b"access-control-allow-headers", self.allow_headers),
            (b"access-control-allow-methods", self.allow_methods),
            (b"access-control-expose-headers", self.expose_headers),
            (b"access-control-max-age", self.max_age),
        ]
        return [(name, value.encode("latin-1")) for name, value in pairs if value]

    def origin_allowed(self, scope: Scope) -> bool:
        """Same-origin and origin-less requests pass; others need an exact match in KG_ALLOW_ORIGIN or `*`."""
        origin = header(scope, b"origin")
        if origin is None:
            return True
        if self.allow_origin == "*":
            return True
        allowed = {item.strip() for item in self.allow_origin.split(",") if item.strip()}
        if origin in allowed:
            return True
        host = header(scope, b"host") or ""
        return urlsplit(origin).netloc.lower() == host.lower() and bool(host)


class CorsMiddleware:
    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy
        self.extra = policy.headers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        if not self.policy.origin_allowed(scope):
            await send_error(scope, send, 403, "Forbidden: cross-origin request refused", self.extra)
            return
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            await send({"type": "http.response.start", "status": 204, "headers": self.extra})
            await send({"type": "http.response.body", "body": b""})
            return
        if not self.extra or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

"""Kernel Gateway's CORS: the configured KG_ALLOW_* headers on every response, answered preflights, and
refusal of cross-origin requests (REST and WebSocket) from origins that are not allowed."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from app.config import Settings
from app.http.asgi import ASGIApp, Message, Receive, Scope, Send, header, send_error

_HTTP_SCHEMES = {"wss": "https", "ws": "http"}


def _first(value: str | None) -> str | None:
    """The client-facing entry of a header a chain of proxies may have appended to."""
    if not value:
        return None
    return value.split(",", 1)[0].strip() or None


@dataclass(frozen=True)
class CorsPolicy:
    allow_origin: str = ""
    allow_credentials: str = ""
    allow_headers: str = ""
    allow_methods: str = ""
    expose_headers: str = ""
    max_age: str = ""
    trust_xheaders: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> CorsPolicy:
        return cls(
            settings.allow_origin,
            settings.allow_credentials,
            settings.allow_headers,
            settings.allow_methods,
            settings.expose_headers,
            settings.max_age,
            settings.trust_xheaders,
        )

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(item.strip() for item in self.allow_origin.split(",") if item.strip())

    def headers(self, origin: str | None) -> list[tuple[bytes, bytes]]:
        """The CORS headers of a response to a request from `origin`.

        One configured origin (or `*`) is sent as it is on every response, as KG does. A browser accepts a
        single origin only, so with several the one that matched is echoed (none when none did), with
        `Vary: Origin` so that caches keep the answers apart.
        """
        pairs = [
            (b"access-control-allow-credentials", self.allow_credentials),
            (b"access-control-allow-headers", self.allow_headers),
            (b"access-control-allow-methods", self.allow_methods),
            (b"access-control-expose-headers", self.expose_headers),
            (b"access-control-max-age", self.max_age),
        ]
        origins = self.origins
        if len(origins) > 1:
            pairs.append((b"vary", "Origin"))
            if origin in origins:
                pairs.insert(0, (b"access-control-allow-origin", origin))
        else:
            pairs.insert(0, (b"access-control-allow-origin", self.allow_origin.strip()))
        return [(name, value.encode("latin-1")) for name, value in pairs if value]

    def origin_allowed(self, scope: Scope) -> bool:
        """Same-origin and origin-less requests pass; others need an exact match in KG_ALLOW_ORIGIN or `*`.

        Same origin means the Origin's host is the Host the request was sent to; behind a trusted proxy
        (KG_TRUST_XHEADERS) that is X-Forwarded-Host, and the Origin's scheme must be X-Forwarded-Proto.
        """
        origin = header(scope, b"origin")
        if origin is None or self.allow_origin.strip() == "*" or origin in self.origins:
            return True
        host = header(scope, b"host")
        scheme = None
        if self.trust_xheaders:
            host = _first(header(scope, b"x-forwarded-host")) or host
            scheme = _first(header(scope, b"x-forwarded-proto"))
        if not host:
            return False
        parts = urlsplit(origin)
        if scheme is not None and parts.scheme.lower() != _HTTP_SCHEMES.get(scheme.lower(), scheme.lower()):
            return False
        return parts.netloc.lower() == host.lower()


class CorsMiddleware:
    def __init__(self, app: ASGIApp, policy: CorsPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        extra = self.policy.headers(header(scope, b"origin"))
        if not self.policy.origin_allowed(scope):
            # As KG (Jupyter Server's check_origin): an HTTP request is a 404, a websocket upgrade a 403.
            if scope["type"] == "websocket":
                await send_error(scope, send, 403, "Forbidden: cross-origin request refused", extra)
            else:
                await send_error(scope, send, 404, "Cross-origin request refused", extra)
            return
        if scope["type"] == "http" and scope["method"] == "OPTIONS":
            # KG's handlers answer a preflight with 200 and an empty body (tornado's finish())
            headers = [*extra, (b"content-length", b"0")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        if not extra or scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

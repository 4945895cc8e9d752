"""Token authentication for every HTTP and WebSocket request (`Authorization: token T` or `?token=T`)."""

from __future__ import annotations

import hmac
from urllib.parse import parse_qsl

from app.asgi import ASGIApp, Receive, Scope, Send, header, send_error


def presented_token(scope: Scope) -> str | None:
    """The token a request carries, from the Authorization header or the token query argument."""
    authorization = header(scope, b"authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("token", "bearer") and value:
            return value.strip()
    query = scope.get("query_string", b"").decode("latin-1")
    if "token=" in query:
        for key, value in parse_qsl(query, keep_blank_values=True):
            if key == "token":
                return str(value)
    return None


def token_matches(expected: str, presented: str | None) -> bool:
    """Constant-time comparison."""
    return presented is not None and hmac.compare_digest(expected.encode(), presented.encode())


class TokenAuthMiddleware:
    """Refuse any request without the token: 401 JSON, before routing, so unknown paths are 401 too.

    `public_prefixes` are static assets that hold no data (the Swagger UI library): browsers load them
    from <script> tags, which cannot carry the token.
    """

    def __init__(
        self,
        app: ASGIApp,
        token: str | None,
        public_prefixes: tuple[str, ...] = (),
        public_paths: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        self.token = token
        self.public_prefixes = public_prefixes
        self.public_paths = frozenset(public_paths)  # exact paths: probes, and /metrics when public

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.token
            and scope["type"] in ("http", "websocket")
            and scope.get("method") != "OPTIONS"
            and not scope["path"].startswith(self.public_prefixes)
            and scope["path"] not in self.public_paths
            and not token_matches(self.token, presented_token(scope))
        ):
            await send_error(scope, send, 401, "Unauthorized: a valid token is required")
            return
        await self.app(scope, receive, send)

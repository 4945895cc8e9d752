"""Token authentication for every HTTP and WebSocket request (`Authorization: token T` or `?token=T`)."""

from __future__ import annotations

import hashlib
import hmac
from http.cookies import CookieError, SimpleCookie
from urllib.parse import parse_qsl

from app.http.asgi import ASGIApp, Receive, Scope, Send, header, send_error


def presented_token(scope: Scope) -> str | None:
    """The token a request carries, in Kernel Gateway's order: a `token` query argument decides alone when
    present (its last value, even if empty), else the Authorization header (`token T`, or `Bearer T`)."""
    query = scope.get("query_string", b"").decode("latin-1")
    if "token" in query:
        values = [value for key, value in parse_qsl(query, keep_blank_values=True) if key == "token"]
        if values:
            return str(values[-1]).strip()
    authorization = header(scope, b"authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() in ("token", "bearer") and value:
            return value.strip()
    return None


ADMIN_COOKIE = "fastkg_admin"


def admin_session_value(token: str) -> str:
    """What the admin login cookie holds: derived from the token, so the cookie is not the token itself
    (it cannot be replayed as a token on other routes) and it stops working when the token changes."""
    return hmac.new(token.encode(), b"fastkg admin session", hashlib.sha256).hexdigest()


def cookie(scope: Scope, name: str) -> str | None:
    raw = header(scope, b"cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


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
        cookie_prefix: str | None = None,
    ) -> None:
        self.app = app
        self.token = token
        self.public_prefixes = public_prefixes
        self.public_paths = frozenset(public_paths)  # exact paths: probes, and /metrics when public
        self.cookie_prefix = cookie_prefix  # the admin API, where the login cookie stands for the token
        self.session = admin_session_value(token) if token else ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.token
            and scope["type"] in ("http", "websocket")
            and scope.get("method") != "OPTIONS"
            and not scope["path"].startswith(self.public_prefixes)
            and scope["path"] not in self.public_paths
            and not token_matches(self.token, presented_token(scope))
            and not self._admin_cookie_matches(scope)
        ):
            await send_error(scope, send, 401, "Unauthorized: a valid token is required")
            return
        await self.app(scope, receive, send)

    def _admin_cookie_matches(self, scope: Scope) -> bool:
        if self.cookie_prefix is None or not scope["path"].startswith(self.cookie_prefix):
            return False
        return token_matches(self.session, cookie(scope, ADMIN_COOKIE))

"""KG_TRUST_XHEADERS: the client's address and scheme as the nearest proxy reports them, read as Tornado (so
KG) reads them. uvicorn's own proxy headers, trusting every host, would take the *first* `X-Forwarded-For`
entry, which is whatever the client sent; the last one is what the proxy appended.
"""

from __future__ import annotations

import ipaddress

from app.http.asgi import ASGIApp, Receive, Scope, Send, header


def forwarded_client(scope: Scope) -> str | None:
    """`X-Real-Ip`, else the last `X-Forwarded-For` entry, when it is an IP address."""
    headers = scope.get("headers", ())
    forwarded = ",".join(bytes(v).decode("latin-1") for k, v in headers if k == b"x-forwarded-for")
    candidate = (header(scope, b"x-real-ip") or forwarded.rsplit(",", 1)[-1]).strip()
    try:
        return str(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def forwarded_scheme(scope: Scope) -> str | None:
    """`X-Scheme`, else `X-Forwarded-Proto` (its last entry), when it is http or https."""
    value = header(scope, b"x-scheme") or header(scope, b"x-forwarded-proto") or ""
    scheme = value.rsplit(",", 1)[-1].strip()
    return scheme if scheme in ("http", "https") else None


class ForwardedHeadersMiddleware:
    """Rewrites the scope's client and scheme (installed only with KG_TRUST_XHEADERS); logs, the login
    limit and everything else then see the proxy's view."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            client = forwarded_client(scope)
            if client is not None:
                peer = scope.get("client")
                scope["client"] = (client, peer[1] if peer else 0)
            scheme = forwarded_scheme(scope)
            if scheme is not None:
                scope["scheme"] = scheme.replace("http", "ws") if scope["type"] == "websocket" else scheme
        await self.app(scope, receive, send)

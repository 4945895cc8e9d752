"""Kernel-API request bodies are JSON whatever their declared Content-Type, as in Jupyter Server and KG.

JupyterLab's client (`@jupyterlab/services`) sends `POST /api/kernels` with a JSON string body and no JSON
content type (fetch then declares `text/plain`); Jupyter Server parses it as JSON all the same. FastAPI
parses only bodies declared as JSON, so for the kernel and session routes this declares them so.
"""

from __future__ import annotations

from app.http.asgi import ASGIApp, Receive, Scope, Send, header

_METHODS_WITH_BODIES = frozenset({"POST", "PUT", "PATCH"})


def _declares_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


class JsonBodiesMiddleware:
    def __init__(self, app: ASGIApp, prefixes: tuple[str, ...]) -> None:
        self.app = app
        self.prefixes = prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == "http"
            and scope["method"] in _METHODS_WITH_BODIES
            and scope["path"].startswith(self.prefixes)
            and not _declares_json(header(scope, b"content-type") or "")
        ):
            headers = [(key, value) for key, value in scope["headers"] if key != b"content-type"]
            scope = {**scope, "headers": [*headers, (b"content-type", b"application/json")]}
        await self.app(scope, receive, send)

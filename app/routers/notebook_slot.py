"""The notebook slot: an app's first route, serving a notebook's routes before every other route of the
app, as KG serves nothing but the notebook in notebook-http mode.

The gateway's slot hosts the root notebook (KG_SEED_URI's): the version active now, read once per request,
so that a reload or a rollback swaps it without touching the app's routes, and each request runs through
its version (counted, so that a replaced version drains). A service version's own app holds its router.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

from app.errors import NotFound, Unauthorized
from app.http.auth import presented_token, token_matches
from app.http.body_limit import BodyLimitMiddleware
from app.notebook_api.service import NotebookService
from app.routers.notebook import Handler, NotebookRouter, notebook_router
from app.services.deployment import AppBuilder, Deployment

_MATCHED = "fastkg.notebook_route"  # the handler the slot matched (as Starlette keeps its `endpoint`)
_VERSION = "fastkg.notebook_version"  # the version that handler belongs to (None: a fixed router)
Current = Callable[[], tuple[NotebookRouter, Deployment | None] | None]


class NotebookApp:
    """One version of the root notebook as an app: its router, matched by the gateway's slot (the handler
    comes in the scope), and the version's body limit when it is below the gateway's own."""

    def __init__(self, router: NotebookRouter, title: str, body_limit: int | None = None) -> None:
        self.router = router
        self.title = title
        self.body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        handler: Handler | None = scope.get(_MATCHED)
        if handler is None:  # not through the slot
            found = self.router.match(scope) if scope["type"] == "http" else None
            if found is None:
                raise NotFound("Not Found")
            handler, child_scope = found
            scope.update(child_scope)
        if self.body_limit is not None:
            limit = self.body_limit
            handler = BodyLimitMiddleware(handler, limit_for=lambda _path: limit)
        await handler(scope, receive, send)

    def openapi(self) -> dict[str, Any]:
        return get_openapi(title=self.title, version="", routes=self.router.documented_routes)


def root_app_builder(gateway_body_limit: int) -> AppBuilder:
    """Builds the root notebook's versions, for the gateway's slot (under the gateway's base URL)."""

    def build(notebook: NotebookService, prefix: str, body_limit: int) -> NotebookApp:
        limit = body_limit if body_limit < gateway_body_limit else None
        return NotebookApp(notebook_router(notebook, prefix), notebook.name, limit)

    return build


def _nothing() -> None:
    return None


class NotebookSlot(BaseRoute):
    """The app's first route: empty until given a router (`hold`) or the root notebook (`host`).

    The token middleware lets some requests through without the token (Swagger UI assets, probes, public
    metrics, the admin login); a notebook path there still needs it, so the exemption never reaches
    notebook code.
    """

    def __init__(
        self,
        token: str | None = None,
        token_free_prefixes: tuple[str, ...] = (),
        token_free_paths: tuple[str, ...] = (),
    ) -> None:
        self._current: Current = _nothing
        self.token = token
        self.token_free_prefixes = token_free_prefixes
        self.token_free_paths = token_free_paths

    def hold(self, router: NotebookRouter) -> None:
        """Serve this router (a service version's own app; the version counts its requests)."""
        self._current = lambda: (router, None)

    def host(self, active: Callable[[], Deployment | None]) -> None:
        """Serve the root notebook's active version, whichever it is when a request comes."""

        def current() -> tuple[NotebookRouter, Deployment | None] | None:
            version = active()
            app = version.app if version is not None else None
            return (app.router, version) if isinstance(app, NotebookApp) else None

        self._current = current

    @property
    def router(self) -> NotebookRouter | None:
        current = self._current()
        return current[0] if current else None

    @property
    def documented_routes(self) -> list[APIRoute]:
        router = self.router
        return router.documented_routes if router else []

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        current = self._current() if scope["type"] == "http" else None
        if current is None:
            return Match.NONE, {}
        router, version = current
        found = router.match(scope)
        if found is None:
            return Match.NONE, {}
        handler, child_scope = found
        return Match.FULL, {**child_scope, _MATCHED: handler, _VERSION: version}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self.token
            and (scope["path"].startswith(self.token_free_prefixes) or scope["path"] in self.token_free_paths)
            and not token_matches(self.token, presented_token(scope))
        ):
            raise Unauthorized("Unauthorized: a valid token is required")
        # Starlette calls handle() right after matches(), with no await between: the version matched is
        # counted in flight before anything else runs, so it cannot have drained meanwhile.
        version: Deployment | None = scope[_VERSION]
        await (version or scope[_MATCHED])(scope, receive, send)


def install_notebook_slot(
    app: FastAPI,
    token: str | None = None,
    token_free_prefixes: tuple[str, ...] = (),
    token_free_paths: tuple[str, ...] = (),
) -> NotebookSlot:
    """Put an empty notebook slot first in the app's routes: in notebook-http mode KG serves only the
    notebook, so its paths win over every other route of the app, which stay for the paths it leaves free."""
    slot = NotebookSlot(token, token_free_prefixes, token_free_paths)
    app.router.routes.insert(0, slot)
    app.state.notebook_slot = slot
    return slot


def mount_notebook_api(app: FastAPI, service: NotebookService, base_url: str) -> None:
    """Fill the app's notebook slot (see install_notebook_slot) with a notebook's router."""
    slot: NotebookSlot = app.state.notebook_slot
    slot.hold(notebook_router(service, base_url))

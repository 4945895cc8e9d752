"""The application factory: middleware, error table, routers, docs and lifespan for one Settings."""

from __future__ import annotations

import html
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app import __version__
from app.auth import TokenAuthMiddleware
from app.body_limit import BodyLimitMiddleware
from app.config import Personality, Settings
from app.cors import CorsMiddleware, CorsPolicy
from app.error_responses import install_error_handlers
from app.json_bodies import JsonBodiesMiddleware
from app.lifespan import StartupErrorMiddleware, build_lifespan
from app.routers import api, channels, kernels, kernelspecs, sessions
from app.routers.services import install_services

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>fastkg API</title>
<link rel="stylesheet" href="{base}/docs/static/swagger-ui.css">
</head>
<body data-openapi="{base}/openapi.json">
<div id="swagger-ui"></div>
<script src="{base}/docs/static/swagger-ui-bundle.js"></script>
<script src="{base}/docs/app/swagger-init.js"></script>
</body>
</html>
"""


def _docs_router(settings: Settings) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    page = DOCS_PAGE.format(base=html.escape(settings.base_url))

    @router.get("/docs")
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)

    return router


def create_app(settings: Settings) -> FastAPI:
    """Build a gateway for these settings. Safe to call more than once in a process."""
    base = settings.base_url
    app = FastAPI(
        title="fastkg",
        version=__version__,
        summary="A Jupyter kernel gateway: the kernel API and notebooks served as HTTP APIs",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{base}/openapi.json",
        lifespan=build_lifespan(settings),
    )
    app.state.settings = settings
    app.router.redirect_slashes = False  # trailing slashes are significant, as in KG
    install_error_handlers(app)
    app.include_router(api.router, prefix=base)
    if Personality.JUPYTER_WEBSOCKET in settings.personalities:
        for router in (kernels.router, kernelspecs.router, sessions.router, channels.router):
            app.include_router(router, prefix=base)
    app.include_router(_docs_router(settings), prefix=base)
    app.mount(f"{base}/docs/static", StaticFiles(directory=str(swagger_ui_path)), name="swagger-static")
    app.mount(f"{base}/docs/app", StaticFiles(directory=Path(__file__).parent / "static"), name="docs-app")
    if Personality.SERVICES in settings.personalities:
        install_services(app, settings)  # its dispatcher is the innermost middleware
    _install_middleware(app, settings)
    return app


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """CORS outermost (so 401s and 413s carry its headers), then token auth, then body limits."""
    api_prefix = f"{settings.base_url}/api/"
    app.add_middleware(JsonBodiesMiddleware, prefixes=(f"{api_prefix}kernels", f"{api_prefix}sessions"))

    services_api = f"{api_prefix}services"

    def limit_for(path: str) -> int:
        if path.startswith(services_api):
            return settings.services_max_upload  # notebook uploads
        return settings.max_rest_body if path.startswith(api_prefix) else settings.max_request_body

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    public = (f"{settings.base_url}/docs/static/", f"{settings.base_url}/docs/app/")
    app.add_middleware(TokenAuthMiddleware, token=settings.token, public_prefixes=public)
    app.add_middleware(CorsMiddleware, policy=CorsPolicy.from_settings(settings))
    app.add_middleware(StartupErrorMiddleware)

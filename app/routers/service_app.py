"""The HTTP app of one service version: its notebook routes (the notebook-http edge), its own OpenAPI
document at <prefix>/openapi.json, Swagger UI at <prefix>/docs and its body limit."""

from __future__ import annotations

import html

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from app.body_limit import BodyLimitMiddleware
from app.error_responses import install_error_handlers
from app.notebook_api.service import NotebookService
from app.routers.notebook import install_notebook_slot, mount_notebook_api
from app.routers.openapi_document import gateway_openapi
from app.services.deployment import AppBuilder

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{base}/docs/static/swagger-ui.css">
</head>
<body data-openapi="{prefix}/openapi.json">
<div id="swagger-ui"></div>
<script src="{base}/docs/static/swagger-ui-bundle.js"></script>
<script src="{base}/docs/app/swagger-init.js"></script>
</body>
</html>
"""


def service_app_builder(base_url: str) -> AppBuilder:
    """An AppBuilder for the registry (the gateway's Swagger UI assets live under `base_url`)."""

    def build(notebook: NotebookService, prefix: str, body_limit: int) -> FastAPI:
        app = FastAPI(
            title=notebook.name,
            summary=f"Notebook service {notebook.name}",
            docs_url=None,
            redoc_url=None,
            openapi_url=f"{prefix}/openapi.json",
        )
        app.router.redirect_slashes = False
        install_error_handlers(app)
        install_notebook_slot(app)
        mount_notebook_api(app, notebook, prefix)
        app.openapi = gateway_openapi(app)  # type: ignore[method-assign]
        page = DOCS_PAGE.format(
            title=html.escape(notebook.name), base=html.escape(base_url), prefix=html.escape(prefix)
        )

        async def swagger_ui() -> HTMLResponse:
            return HTMLResponse(page)

        app.add_api_route(f"{prefix}/docs", swagger_ui, methods=["GET"], include_in_schema=False)
        app.add_middleware(BodyLimitMiddleware, limit_for=lambda _path: body_limit)
        return app

    return build

"""Swagger UI pages: the gateway's at `<base>/docs` and each notebook service's at `<prefix>/docs`, served
from the local swagger-ui assets (no CDN)."""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{assets}/docs/static/swagger-ui.css">
</head>
<body data-openapi="{openapi}">
<div id="swagger-ui"></div>
<script src="{assets}/docs/static/swagger-ui-bundle.js"></script>
<script src="{assets}/docs/app/swagger-init.js"></script>
</body>
</html>
"""


def docs_router(path: str, title: str, openapi_url: str, assets_base: str) -> APIRouter:
    """A router serving Swagger UI at `path` for the document at `openapi_url`; the assets live under
    `assets_base` (the gateway's base URL)."""
    page = PAGE.format(
        title=html.escape(title), assets=html.escape(assets_base), openapi=html.escape(openapi_url)
    )
    router = APIRouter(include_in_schema=False)

    @router.get(path)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(page)

    return router

"""The HTTP app of one service version: its notebook routes (the notebook-http edge), its own OpenAPI
document at <prefix>/openapi.json, Swagger UI at <prefix>/docs and its body limit."""

from __future__ import annotations

from fastapi import FastAPI

from app.http.body_limit import BodyLimitMiddleware
from app.http.error_responses import install_error_handlers
from app.notebook_api.service import NotebookService
from app.routers.docs import docs_router
from app.routers.notebook_slot import install_notebook_slot, mount_notebook_api
from app.routers.openapi_document import gateway_openapi
from app.services.deployment import AppBuilder


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
        app.include_router(docs_router(f"{prefix}/docs", notebook.name, f"{prefix}/openapi.json", base_url))
        app.add_middleware(BodyLimitMiddleware, limit_for=lambda _path: body_limit)
        return app

    return build

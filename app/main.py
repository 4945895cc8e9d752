"""The application factory: middleware, error table, routers, docs and lifespan for one Settings."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from app import __version__
from app.config import Personality, Settings
from app.http.auth import TokenAuthMiddleware
from app.http.body_limit import BodyLimitMiddleware
from app.http.cors import CorsMiddleware, CorsPolicy
from app.http.error_responses import install_error_handlers
from app.http.forwarded import ForwardedHeadersMiddleware
from app.http.json_bodies import JsonBodiesMiddleware
from app.http.request_id import RequestIdMiddleware
from app.lifespan import StartupErrorMiddleware, build_lifespan
from app.observability.http_metrics import HttpMetrics, HttpMetricsMiddleware
from app.observability.metrics import build_registries
from app.plugins import GatewayServices, create_personalities
from app.routers import api, channels, health, kernels, kernelspecs, metrics, sessions
from app.routers.admin import mount_admin, public_admin_paths
from app.routers.docs import docs_router
from app.routers.notebook_slot import install_notebook_slot
from app.routers.openapi_document import gateway_openapi
from app.routers.services import install_services


def create_app(settings: Settings) -> FastAPI:
    """Build a gateway for these settings. Safe to call more than once in a process."""
    base = settings.base_url
    services = GatewayServices(settings)
    plugins = create_personalities(settings, services)  # ConfigurationError for an unknown KG_API name
    app = FastAPI(
        title="fastkg",
        version=__version__,
        summary="A Jupyter kernel gateway: the kernel API and notebooks served as HTTP APIs",
        docs_url=None,
        redoc_url=None,
        openapi_url=f"{base}/openapi.json",
        lifespan=build_lifespan(settings, services, plugins),
    )
    app.state.settings = settings
    app.state.metrics = build_registries(lambda: getattr(app.state, "gateway", None))
    app.router.redirect_slashes = False  # trailing slashes are significant, as in KG
    install_error_handlers(app)
    if Personality.NOTEBOOK_HTTP in settings.personalities:
        install_notebook_slot(app, settings.token, *_token_exemptions(settings))
    app.include_router(health.router, prefix=base)
    if settings.metrics:
        app.include_router(metrics.router, prefix=base)
    if settings.admin_enabled:
        mount_admin(app, settings)
    if Personality.JUPYTER_WEBSOCKET in settings.personalities:
        for router in (api.router, kernels.router, kernelspecs.router, sessions.router, channels.router):
            app.include_router(router, prefix=base)
    for plugin in plugins:
        app.include_router(plugin.create_router(), prefix=base)
    app.include_router(docs_router(f"{base}/docs", "fastkg API", f"{base}/openapi.json", base))
    app.mount(f"{base}/docs/static", StaticFiles(directory=str(swagger_ui_path)), name="swagger-static")
    app.mount(f"{base}/docs/app", StaticFiles(directory=Path(__file__).parent / "static"), name="docs-app")
    registry = None
    if Personality.SERVICES in settings.personalities:
        registry = install_services(app, settings).registry  # its dispatcher is the innermost middleware
    app.openapi = gateway_openapi(app, registry)  # type: ignore[method-assign]
    _install_middleware(app, settings)
    return app


def _token_exemptions(settings: Settings) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Path prefixes and exact paths served without the token: the Swagger UI assets, the probes, public
    metrics, KG's Swagger documents, and the admin page's own assets and login (its API takes the login
    cookie instead)."""
    base = settings.base_url
    prefixes: tuple[str, ...] = (f"{base}/docs/static/", f"{base}/docs/app/")
    paths: tuple[str, ...] = (
        f"{base}/livez",
        f"{base}/readyz",
        *([f"{base}/metrics"] if settings.metrics and settings.metrics_public else []),
        # KG serves its Swagger documents of the kernel API without a token: they hold no data
        *(
            (f"{base}/api/swagger.json", f"{base}/api/swagger.yaml")
            if Personality.JUPYTER_WEBSOCKET in settings.personalities
            else ()
        ),
    )
    if settings.admin_enabled:
        admin_prefixes, admin_paths = public_admin_paths(settings)
        prefixes, paths = (*prefixes, *admin_prefixes), (*paths, *admin_paths)
    return prefixes, paths


def _install_middleware(app: FastAPI, settings: Settings) -> None:
    """CORS outermost (so 401s and 413s carry its headers), then token auth, then body limits."""
    api_prefix = f"{settings.base_url}/api/"
    kernel_api = Personality.JUPYTER_WEBSOCKET in settings.personalities  # else /api/ is the notebook's
    if kernel_api:
        app.add_middleware(JsonBodiesMiddleware, prefixes=(f"{api_prefix}kernels", f"{api_prefix}sessions"))

    services_api = f"{api_prefix}services"

    def limit_for(path: str) -> int:
        if path.startswith(services_api):
            return settings.services_max_upload  # notebook uploads
        rest = kernel_api and path.startswith(api_prefix)
        return settings.max_rest_body if rest else settings.max_request_body

    app.add_middleware(BodyLimitMiddleware, limit_for=limit_for)
    public_prefixes, public_paths = _token_exemptions(settings)
    app.add_middleware(
        TokenAuthMiddleware,
        token=settings.token,
        public_prefixes=public_prefixes,
        public_paths=public_paths,
        cookie_prefix=f"{settings.base_url}/admin/api/" if settings.admin_enabled else None,
    )
    app.add_middleware(CorsMiddleware, policy=CorsPolicy.from_settings(settings))
    if settings.metrics:
        app.add_middleware(HttpMetricsMiddleware, metrics=HttpMetrics(app.state.metrics.gateway))
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(StartupErrorMiddleware)
    if settings.trust_xheaders:  # outermost: logs and every check see the proxy's client and scheme
        app.add_middleware(ForwardedHeadersMiddleware)

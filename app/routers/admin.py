"""The admin page and its JSON API (FASTKG_ADMIN): kernels and notebook services, live over SSE.

With a token, the page logs in once: POST /admin/api/login sets an HttpOnly, SameSite=Strict cookie that
the token middleware accepts for /admin/api only. State-changing calls need the X-CSRF-Token header to
match the csrf cookie (double submit), unless the request carries the token itself. Wrong tokens are
counted per client address: past FASTKG_ADMIN_LOGIN_ATTEMPTS within FASTKG_ADMIN_LOGIN_WINDOW seconds, the
login answers 429 with Retry-After, even for the right token, until the window has passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import html
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI, Request, Response, status
from fastapi.responses import HTMLResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from app.config import Personality, Settings
from app.deps import GatewayDep, SettingsDep
from app.errors import Forbidden, GatewayError, TooManyRequests, Unauthorized
from app.http.auth import ADMIN_COOKIE, admin_session_value, presented_token, token_matches
from app.http.login_limit import LoginLimiter, client_address
from app.kernels.usage import UsageProbe
from app.routers.admin_services import services_router
from app.routers.admin_views import (
    AdminKernel,
    AdminOverview,
    AdminSession,
    AdminSnapshot,
    IdleShutdownRequest,
    IdleShutdownResult,
    LoginRequest,
    kernel_rows,
    overview,
    service_rows,
)
from app.routers.tags import Tag
from app.schemas import ErrorModel, error_responses
from app.services.runtime import ServicesRuntime
from app.state import Phase

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent.parent / "static" / "admin"
CSRF_COOKIE = "fastkg_csrf"
CSRF_HEADER = "x-csrf-token"
STREAM_SECONDS = 15.0  # each event stream ends after this; EventSource reconnects (so shutdown never waits)
SNAPSHOT_EVERY = 2.0
# the page loads only its own script and stylesheet: no inline code can run, and no site can frame it
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}


def _usage(request: Request) -> UsageProbe:
    probe: UsageProbe = request.app.state.admin_usage
    return probe


def require_csrf(request: Request) -> None:
    """Double-submit check for calls authenticated by the cookie (a cross-site page cannot read the
    csrf cookie, so it cannot send the matching header)."""
    settings: Settings = request.app.state.settings
    if settings.token and token_matches(settings.token, presented_token(request.scope)):
        return
    expected = request.cookies.get(CSRF_COOKIE) or ""
    given = request.headers.get(CSRF_HEADER) or ""
    if not expected or not hmac.compare_digest(expected, given):
        raise Forbidden("Forbidden: missing or wrong X-CSRF-Token")


def _set_cookie(response: Response, request: Request, name: str, value: str, http_only: bool) -> None:
    settings: Settings = request.app.state.settings
    response.set_cookie(
        name,
        value,
        path=f"{settings.base_url}/admin",
        httponly=http_only,
        samesite="strict",
        secure=request.url.scheme == "https",
    )


api = APIRouter(prefix="/admin/api", tags=[Tag.ADMIN])
CSRF = [Depends(require_csrf)]
KERNEL_ERRORS = error_responses(403, 404)  # a missing X-CSRF-Token; an unknown (or unlisted) kernel


@api.get("/session", operation_id="admin_get_session")
async def get_session(request: Request, response: Response, settings: SettingsDep) -> AdminSession:
    """Whether a login is needed and done; issues the csrf cookie the page sends back as a header."""
    csrf = request.cookies.get(CSRF_COOKIE) or secrets.token_urlsafe(24)
    _set_cookie(response, request, CSRF_COOKIE, csrf, http_only=False)
    token = settings.token
    authenticated = not token or token_matches(admin_session_value(token), request.cookies.get(ADMIN_COOKIE))
    return AdminSession(token_required=bool(token), authenticated=authenticated, csrf_token=csrf)


@api.post(
    "/login",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="admin_login",
    responses={
        401: {"model": ErrorModel, "description": "Wrong token"},
        429: {
            "model": ErrorModel,
            "description": "Too many wrong tokens from this address lately; try again after Retry-After "
            "seconds",
            "headers": {"Retry-After": {"schema": {"type": "integer"}}},
        },
    },
)
async def login(body: LoginRequest, request: Request, response: Response, settings: SettingsDep) -> None:
    """Exchange the token for the admin cookie (HttpOnly, SameSite=Strict; never the token itself). After
    too many wrong tokens from one address, every login from it is refused (429) for a while."""
    limiter: LoginLimiter = request.app.state.admin_logins
    address = client_address(request.scope)
    if (wait := limiter.retry_after(address)) is not None:
        raise TooManyRequests("Too many failed logins: try again later", retry_after=wait)
    if not settings.token or not token_matches(settings.token, body.token):
        if limiter.failed(address):
            log.warning(
                "admin login: %d wrong tokens from %s within %g s; its logins are refused for a while",
                limiter.attempts,
                address or "an unknown address",
                limiter.window,
            )
        raise Unauthorized("Unauthorized: wrong token")
    _set_cookie(response, request, ADMIN_COOKIE, admin_session_value(settings.token), http_only=True)


@api.post("/logout", status_code=status.HTTP_204_NO_CONTENT, operation_id="admin_logout")
async def logout(request: Request, response: Response, settings: SettingsDep) -> None:
    """Forget the admin cookie."""
    response.delete_cookie(ADMIN_COOKIE, path=f"{settings.base_url}/admin")


@api.get("/overview", operation_id="admin_get_overview")
async def get_overview(gateway: GatewayDep) -> AdminOverview:
    """Version, uptime, readiness, kernel counts against KG_MAX_KERNELS, culling settings."""
    return overview(gateway)


@api.get("/kernels", operation_id="admin_list_kernels")
async def list_kernels(request: Request, gateway: GatewayDep) -> list[AdminKernel]:
    """Every kernel: listed ones, warm ones and notebook pool kernels, with CPU and memory."""
    return await kernel_rows(gateway, _usage(request))


@api.post(
    "/kernels/{kernel_id}/interrupt",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=CSRF,
    operation_id="admin_interrupt_kernel",
    responses=KERNEL_ERRORS,
)
async def interrupt_kernel(kernel_id: str, gateway: GatewayDep) -> None:
    """Interrupt a listed kernel."""
    await gateway.kernels.interrupt(kernel_id)


@api.post(
    "/kernels/{kernel_id}/restart",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=CSRF,
    operation_id="admin_restart_kernel",
    responses=KERNEL_ERRORS,
)
async def restart_kernel(kernel_id: str, gateway: GatewayDep) -> None:
    """Restart a listed kernel."""
    await gateway.kernels.restart(kernel_id)


@api.delete(
    "/kernels/{kernel_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    dependencies=CSRF,
    operation_id="admin_shutdown_kernel",
    responses=KERNEL_ERRORS,
)
async def shutdown_kernel(kernel_id: str, gateway: GatewayDep) -> None:
    """Shut a listed kernel down."""
    await gateway.kernels.shutdown(kernel_id)


@api.post(
    "/kernels/shutdown-idle",
    dependencies=CSRF,
    operation_id="admin_shutdown_idle_kernels",
    responses=error_responses(403),
)
async def shutdown_idle(body: IdleShutdownRequest, gateway: GatewayDep) -> IdleShutdownResult:
    """Shut down every listed kernel that is not busy and has been idle longer than `idle_seconds`."""
    now, done = time.time(), []
    for kernel in gateway.kernels.running():
        if kernel.execution_state != "busy" and now - kernel.last_activity.timestamp() > body.idle_seconds:
            with contextlib.suppress(GatewayError):
                await gateway.kernels.shutdown(kernel.id)
                done.append(kernel.id)
    return IdleShutdownResult(shut_down=done)


@api.get(
    "/events",
    operation_id="admin_stream_events",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {"text/event-stream": {}},
            "description": "`snapshot` events (an AdminSnapshot) and, when the gateway serves notebook "
            "services, `services` events (the list GET /admin/api/services answers)",
        }
    },
)
async def stream_events(request: Request, gateway: GatewayDep) -> StreamingResponse:
    """Server-sent events: an AdminSnapshot now (without CPU and memory), then on every kernel event and
    every 2 s. With the services API on, each of those ticks is preceded by a `services` event (the same
    rows as GET /admin/api/services, traffic numbers included) when the rows differ from the last ones sent
    on this stream; the first tick always sends them. A stream ends after 15 s (EventSource reconnects)."""
    usage = _usage(request)
    runtime: ServicesRuntime | None = getattr(request.app.state, "services_runtime", None)

    async def events() -> AsyncIterator[str]:
        changed = asyncio.Event()
        unsubscribe = gateway.kernels.events.subscribe(lambda _: changed.set())
        ends = time.monotonic() + STREAM_SECONDS
        measure = False  # the first snapshot at once, without waiting for every kernel's usage
        sent_services = ""
        try:
            yield "retry: 1000\n\n"
            while time.monotonic() < ends and gateway.phase is Phase.READY:
                if runtime is not None and (services := service_rows(runtime)) != sent_services:
                    sent_services = services
                    yield f"event: services\ndata: {services}\n\n"
                rows = await kernel_rows(gateway, usage, measure=measure)
                snapshot = AdminSnapshot(overview=overview(gateway), kernels=rows)
                measure = True
                yield f"event: snapshot\ndata: {snapshot.model_dump_json()}\n\n"
                changed.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(SNAPSHOT_EVERY):
                        await changed.wait()
        finally:
            unsubscribe()

    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(events(), media_type="text/event-stream", headers=headers)


def mount_admin(app: FastAPI, settings: Settings) -> None:
    """Add the page, its static files and its API (only when FASTKG_ADMIN enables them)."""
    base = settings.base_url
    page = (STATIC / "index.html").read_text().replace("{{base}}", html.escape(base))
    page = page.replace("{{base_json}}", html.escape(json.dumps(base)))
    app.state.admin_usage = UsageProbe()
    app.state.admin_logins = LoginLimiter(settings.admin_login_attempts, settings.admin_login_window)

    async def admin_page() -> HTMLResponse:
        return HTMLResponse(page, headers=PAGE_HEADERS)

    app.add_api_route(f"{base}/admin", admin_page, methods=["GET"], include_in_schema=False)
    app.include_router(api, prefix=base)
    if Personality.SERVICES in settings.personalities:  # else /admin/api/services is a 404: "services off"
        app.include_router(services_router(require_csrf), prefix=f"{base}/admin/api", tags=[Tag.ADMIN])
    app.mount(f"{base}/admin/static", StaticFiles(directory=STATIC), name="admin-static")


def public_admin_paths(settings: Settings) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(prefixes, exact paths) that need no token: the page shell, its assets, session and login."""
    base = settings.base_url
    return (f"{base}/admin/static/",), (
        f"{base}/admin",
        f"{base}/admin/api/session",
        f"{base}/admin/api/login",
    )

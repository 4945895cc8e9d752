"""Kubernetes probes: /livez (the process serves) and /readyz (startup done and pools filled), no token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.errors import error_body
from app.routers.tags import Tag
from app.schemas import ErrorModel

router = APIRouter(tags=[Tag.HEALTH])


@router.get("/livez", operation_id="get_liveness")
async def get_liveness() -> dict[str, str]:
    """200 while the process serves HTTP; checks nothing else (a restart would not help anything else)."""
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="get_readiness",
    responses={503: {"model": ErrorModel, "description": "Not ready; `message` says why"}},
)
async def get_readiness(request: Request) -> JSONResponse:
    """200 once startup is done and the warm and notebook pools are filled; 503 with the reason otherwise."""
    gateway = getattr(request.app.state, "gateway", None)
    reason = "starting" if gateway is None else gateway.readiness()
    if reason is not None:
        return JSONResponse(error_body(503, reason), status_code=503)
    return JSONResponse({"status": "ready"})

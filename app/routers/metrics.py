"""GET /metrics: the Prometheus text exposition of this gateway's registry."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from app.observability.metrics import Registries
from app.routers.tags import Tag

router = APIRouter(tags=[Tag.METRICS])


@router.get(
    "/metrics",
    operation_id="get_metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
)
async def get_metrics(request: Request) -> Response:
    """Metrics in the Prometheus text format (token required unless FASTKG_METRICS_PUBLIC)."""
    registries: Registries = request.app.state.metrics
    gateway = generate_latest(registries.gateway)  # on the loop: it reads objects the loop changes
    process = await asyncio.to_thread(generate_latest, registries.process)  # reads /proc files
    return Response(gateway + process, media_type=CONTENT_TYPE_LATEST)

"""GET /metrics: the Prometheus text exposition of this gateway's registry."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

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
    registry: CollectorRegistry = request.app.state.metrics_registry
    # the process collector reads /proc files: keep that off the event loop
    body = await asyncio.to_thread(generate_latest, registry)
    return Response(body, media_type=CONTENT_TYPE_LATEST)

"""The kernel channels WebSocket: legacy JSON frames or the v1.kernel.websocket.jupyter.org subprotocol."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from fastapi.responses import JSONResponse

from app.deps import KernelsDep
from app.errors import KernelNotFound, error_body
from app.kernels.bridge import relay
from app.kernels.wire import V1_SUBPROTOCOL
from app.routers.traffic import CountedWebSocket

router = APIRouter()


@router.websocket("/api/kernels/{kernel_id}/channels")
async def kernel_channels(websocket: WebSocket, kernel_id: str, kernels: KernelsDep) -> None:
    """Relay messages between this websocket and the kernel's shell, control, stdin and iopub channels."""
    try:
        kernel = kernels.get(kernel_id)
    except KernelNotFound as exc:
        await websocket.send_denial_response(JSONResponse(error_body(404, exc.message), status_code=404))
        return
    offered = websocket.scope.get("subprotocols") or []
    subprotocol = V1_SUBPROTOCOL if V1_SUBPROTOCOL in offered else None
    session_id = websocket.query_params.get("session_id") or None  # none: the session cannot be resumed
    await websocket.accept(subprotocol=subprotocol)
    gateway = getattr(websocket.app.state, "gateway", None)
    client = CountedWebSocket(websocket, gateway.traffic) if gateway is not None else websocket
    await relay(kernel, client, session_id, subprotocol)

"""REST routes for Jupyter Server sessions."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from app.deps import SessionsDep, SettingsDep
from app.errors import BadRequest, Forbidden
from app.routers.models import session_model
from app.routers.tags import Tag
from app.schemas import (
    CreateSessionRequest,
    NullIsRefused,
    SessionModel,
    UpdateSessionRequest,
    error_responses,
)

router = APIRouter(
    prefix="/api/sessions",
    tags=[Tag.SESSIONS],
    responses=error_responses(400, 404),
)

# Jupyter Server's answers to a body it cannot use
NO_JSON = "No JSON data provided"
# A body is optional to FastAPI, so that a missing one gets Jupyter Server's 400 NO_JSON, but the
# document says what is needed: an object (null or nothing is that 400)
REQUIRED_BODY = {"requestBody": {"required": True}}


@router.get("", operation_id="list_sessions", responses=error_responses(403))
async def list_sessions(sessions: SessionsDep, settings: SettingsDep) -> list[SessionModel]:
    """List sessions. Forbidden unless KG_LIST_KERNELS is enabled, as in Kernel Gateway: a session
    model carries its kernel's id, which is otherwise known only to whoever started the kernel."""
    if not settings.list_kernels:
        raise Forbidden("Forbidden")
    return [session_model(s, k) for s, k in sessions.entries()]


def _path_and_type(body: CreateSessionRequest | None) -> tuple[CreateSessionRequest, str, str]:
    """Jupyter Server's checks, in its order, including the legacy `notebook` field."""
    if body is None:
        raise BadRequest(NO_JSON)
    path, type_ = body.path, body.type
    if body.notebook is not None:
        type_ = "notebook"
        path = body.notebook.name if body.notebook.name is not None else body.notebook.path or path
    if path is None:
        raise BadRequest("Missing field in JSON data: path")
    if type_ is None:
        raise BadRequest("Missing field in JSON data: type")
    return body, path, type_


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="create_session",
    openapi_extra=REQUIRED_BODY,
    responses=error_responses(403, 500, 503),  # a new kernel: KG_MAX_KERNELS, a failed start, shutdown
)
async def create_session(
    request: Request,
    response: Response,
    sessions: SessionsDep,
    body: Annotated[CreateSessionRequest | None, Body(), NullIsRefused()] = None,
) -> SessionModel:
    """Create a session (`path` and `type` are required), starting a kernel unless an existing kernel id
    is given; an existing session with the same path is returned as it is."""
    body, path, type_ = _path_and_type(body)
    kernel = body.kernel
    session, k = await sessions.create(
        path,
        body.name or "",
        type_,
        kernel.id if kernel else None,
        kernel.name if kernel else None,
    )
    response.headers["Location"] = f"{request.url.path}/{session.id}"
    return session_model(session, k)


@router.get("/{session_id}", operation_id="get_session")
async def get_session(session_id: str, sessions: SessionsDep) -> SessionModel:
    """Get one session."""
    return session_model(*sessions.get(session_id))


@router.patch(
    "/{session_id}",
    operation_id="update_session",
    openapi_extra=REQUIRED_BODY,
    responses=error_responses(403, 500, 503),  # moving to a new kernel starts one
)
async def update_session(
    session_id: str,
    sessions: SessionsDep,
    body: Annotated[UpdateSessionRequest | None, Body(), NullIsRefused()] = None,
) -> SessionModel:
    """Rename a session, or move it to another kernel."""
    if body is None:
        raise BadRequest(NO_JSON)
    kernel = body.kernel
    session, k = await sessions.update(
        session_id,
        path=body.path,
        name=body.name,
        type_=body.type,
        kernel_id=kernel.id if kernel else None,
        kernel_name=kernel.name if kernel else None,
    )
    return session_model(session, k)


@router.delete("/{session_id}", status_code=status.HTTP_204_NO_CONTENT, operation_id="delete_session")
async def delete_session(session_id: str, sessions: SessionsDep) -> Response:
    """Delete a session and shut its kernel down."""
    await sessions.delete(session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)

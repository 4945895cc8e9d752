"""REST routes for Jupyter Server sessions."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from app.deps import SessionsDep
from app.routers.models import session_model
from app.routers.tags import Tag
from app.schemas import CreateSessionRequest, ErrorModel, SessionModel, UpdateSessionRequest

router = APIRouter(prefix="/api/sessions", tags=[Tag.SESSIONS], responses={404: {"model": ErrorModel}})


@router.get("", operation_id="list_sessions")
async def list_sessions(sessions: SessionsDep) -> list[SessionModel]:
    """List sessions."""
    return [session_model(s, k) for s, k in sessions.entries()]


@router.post("", status_code=status.HTTP_201_CREATED, operation_id="create_session")
async def create_session(
    body: CreateSessionRequest, request: Request, response: Response, sessions: SessionsDep
) -> SessionModel:
    """Create a session, starting a kernel unless an existing kernel id is given."""
    kernel = body.kernel
    session, k = await sessions.create(
        body.path or "",
        body.name or "",
        body.type or "",
        kernel.id if kernel else None,
        kernel.name if kernel else None,
    )
    response.headers["Location"] = f"{request.url.path}/{session.id}"
    return session_model(session, k)


@router.get("/{session_id}", operation_id="get_session")
async def get_session(session_id: str, sessions: SessionsDep) -> SessionModel:
    """Get one session."""
    return session_model(*sessions.get(session_id))


@router.patch("/{session_id}", operation_id="update_session")
async def update_session(session_id: str, body: UpdateSessionRequest, sessions: SessionsDep) -> SessionModel:
    """Rename a session, or move it to another kernel."""
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

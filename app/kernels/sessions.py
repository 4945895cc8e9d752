"""Jupyter Server's sessions: named bindings of a path to a kernel, kept in memory."""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import BadRequest, KernelNotFound, SessionNotFound
from app.kernels.ids import new_id
from app.kernels.kernel import Kernel
from app.kernels.service import KernelService


@dataclass
class Session:
    id: str
    path: str
    name: str
    type: str
    kernel_id: str


class SessionStore:
    """Sessions whose kernel is gone disappear, as in Jupyter Server."""

    def __init__(self, kernels: KernelService) -> None:
        self.kernels = kernels
        self._sessions: dict[str, Session] = {}

    def _alive(self, session: Session) -> bool:
        try:
            self.kernels.get(session.kernel_id)
        except KernelNotFound:
            self._sessions.pop(session.id, None)
            return False
        return True

    def entries(self) -> list[tuple[Session, Kernel]]:
        return [(s, self.kernels.get(s.kernel_id)) for s in list(self._sessions.values()) if self._alive(s)]

    def get(self, session_id: str) -> tuple[Session, Kernel]:
        session = self._sessions.get(session_id)
        if session is None or not self._alive(session):
            raise SessionNotFound(session_id)
        return session, self.kernels.get(session.kernel_id)

    def find_by_path(self, path: str) -> Session | None:
        return next((s for s in list(self._sessions.values()) if s.path == path and self._alive(s)), None)

    async def _kernel_for(self, kernel_id: str | None, kernel_name: str | None) -> Kernel:
        if kernel_id:
            return self.kernels.get(kernel_id)
        return await self.kernels.start(kernel_name)

    async def create(
        self, path: str, name: str, type_: str, kernel_id: str | None, kernel_name: str | None
    ) -> tuple[Session, Kernel]:
        existing = self.find_by_path(path) if path else None
        if existing is not None:
            return existing, self.kernels.get(existing.kernel_id)
        kernel = await self._kernel_for(kernel_id, kernel_name)
        # the replica's prefix, as on kernel ids: a proxy routes /api/sessions/{id} by it too
        session = Session(new_id(self.kernels.policy.kernel_id_prefix), path, name, type_, kernel.id)
        self._sessions[session.id] = session
        return session, kernel

    async def update(
        self,
        session_id: str,
        *,
        path: str | None,
        name: str | None,
        type_: str | None,
        kernel_id: str | None,
        kernel_name: str | None,
    ) -> tuple[Session, Kernel]:
        session, kernel = self.get(session_id)
        if kernel_id and kernel_id != kernel.id:
            try:
                kernel = self.kernels.get(kernel_id)
            except KernelNotFound:
                raise BadRequest(f"No such kernel: {kernel_id}") from None  # Jupyter Server's 400
        elif kernel_name and kernel_name != kernel.name:
            old = kernel.id
            kernel = await self.kernels.start(kernel_name)
            await self.kernels.shutdown(old)
        session.kernel_id = kernel.id
        session.path = path if path is not None else session.path
        session.name = name if name is not None else session.name
        session.type = type_ if type_ is not None else session.type
        return session, kernel

    async def delete(self, session_id: str) -> None:
        session, kernel = self.get(session_id)
        self._sessions.pop(session.id, None)
        await self.kernels.shutdown(kernel.id)

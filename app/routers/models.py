"""Shaping domain objects into wire models."""

from __future__ import annotations

from app.kernels.kernel import Kernel
from app.kernels.sessions import Session
from app.schemas import KernelModel, SessionModel


def kernel_model(kernel: Kernel) -> KernelModel:
    return KernelModel(
        id=kernel.id,
        name=kernel.name,
        last_activity=kernel.last_activity,
        execution_state=kernel.execution_state,
        connections=kernel.connections,
    )


def session_model(session: Session, kernel: Kernel) -> SessionModel:
    return SessionModel(
        id=session.id, path=session.path, name=session.name, type=session.type, kernel=kernel_model(kernel)
    )

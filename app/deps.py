"""FastAPI dependency aliases: how routes reach the settings and services built by the lifespan."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from app.config import Settings
from app.kernels.service import KernelService
from app.kernels.sessions import SessionStore
from app.state import GatewayState


def get_settings(connection: HTTPConnection) -> Settings:
    settings: Settings = connection.app.state.settings
    return settings


def get_kernels(connection: HTTPConnection) -> KernelService:
    service: KernelService | None = getattr(connection.app.state, "kernels", None)
    if service is None:
        raise HTTPException(503, "The gateway is starting")
    return service


def get_sessions(connection: HTTPConnection) -> SessionStore:
    store: SessionStore = connection.app.state.sessions
    return store


def get_gateway(connection: HTTPConnection) -> GatewayState:
    state: GatewayState | None = getattr(connection.app.state, "gateway", None)
    if state is None:
        raise HTTPException(503, "The gateway is starting")
    return state


SettingsDep = Annotated[Settings, Depends(get_settings)]
KernelsDep = Annotated[KernelService, Depends(get_kernels)]
SessionsDep = Annotated[SessionStore, Depends(get_sessions)]
GatewayDep = Annotated[GatewayState, Depends(get_gateway)]

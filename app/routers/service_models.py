"""Wire models of the services REST API, for its OpenAPI document (the field names are a contract)."""

from __future__ import annotations

from pydantic import BaseModel


class VersionSummary(BaseModel):
    id: int
    hash: str
    created: str
    deployed_by: str


class VersionEntry(VersionSummary):
    active: bool


class EndpointModel(BaseModel):
    method: str
    path: str


class PoolModel(BaseModel):
    min: int
    max: int
    size: int
    busy: int


class ServiceModel(BaseModel):
    name: str
    prefix: str
    state: str
    version: VersionSummary | None
    kernel_name: str
    endpoints: list[EndpointModel]
    pool: PoolModel
    error: str | None

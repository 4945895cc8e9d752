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
    idle: int


class TrafficModel(BaseModel):
    requests: int
    errors: int  # answered with a 5xx
    rate: float  # requests per second over the last minute
    p50: float | None  # seconds; None before the first request
    p99: float | None


class ServiceModel(BaseModel):
    name: str
    prefix: str
    state: str
    version: VersionSummary | None
    kernel_name: str
    endpoints: list[EndpointModel]
    pool: PoolModel
    error: str | None
    traffic: TrafficModel

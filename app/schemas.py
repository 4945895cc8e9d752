"""Pydantic wire models of the REST API (Jupyter Server's kernel, kernelspec and session models)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


class StartKernelRequest(BaseModel):
    """Body of POST /api/kernels. Both fields are optional."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, description="Kernelspec name; the default kernel when absent")
    env: dict[str, str] | None = Field(
        None,
        description="KERNEL_* (and whitelisted) variables for the kernel's environment: an object of strings",
    )

    @field_validator("env", mode="before")
    @classmethod
    def _env_is_an_object(cls, value: object) -> object:
        # KG answers 400 for an `env` that is present but not an object, null included
        if not isinstance(value, dict):
            raise ValueError("env must be an object")
        return value


class KernelModel(BaseModel):
    id: str
    name: str
    last_activity: datetime = Field(description="UTC, as YYYY-MM-DDTHH:MM:SS.ffffffZ")
    execution_state: str
    connections: int

    @field_serializer("last_activity")
    def _timestamp(self, value: datetime) -> str:
        return value.strftime(TIMESTAMP_FORMAT)


class KernelSpecFile(BaseModel):
    model_config = ConfigDict(extra="allow")

    argv: list[str]
    display_name: str
    language: str
    interrupt_mode: str = "signal"
    env: dict[str, str] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class KernelSpecModel(BaseModel):
    name: str
    spec: KernelSpecFile
    resources: dict[str, str]


class KernelSpecsModel(BaseModel):
    default: str
    kernelspecs: dict[str, KernelSpecModel]


class VersionModel(BaseModel):
    version: str
    gateway: Literal["fastkg"] = "fastkg"


class SessionKernelRef(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    name: str | None = None


class SessionNotebookRef(BaseModel):
    """The pre-4.0 sessions API's `{"notebook": {"path"|"name"}}`, which Jupyter Server still reads."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = None
    path: str | None = None


class CreateSessionRequest(BaseModel):
    """Body of POST /api/sessions. `path` and `type` are required (400 otherwise, as in Jupyter Server)."""

    model_config = ConfigDict(extra="ignore")

    path: str | None = None
    name: str | None = None
    type: str | None = None
    kernel: SessionKernelRef | None = None
    notebook: SessionNotebookRef | None = Field(None, description="Deprecated: use path and type")


class UpdateSessionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str | None = None
    name: str | None = None
    type: str | None = None
    kernel: SessionKernelRef | None = None


class SessionModel(BaseModel):
    id: str
    path: str
    name: str
    type: str
    kernel: KernelModel


class ErrorModel(BaseModel):
    reason: str
    message: str

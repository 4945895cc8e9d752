"""Pydantic wire models of the REST API (Jupyter Server's kernel, kernelspec and session models)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, field_serializer, field_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


@dataclass(frozen=True)
class NullIsRefused:
    """Marks an optional value whose null the route refuses with a 400 of its own: the document offers
    only the value, while validation still lets None through to the route (and its messages stay)."""

    def __get_pydantic_json_schema__(
        self, core: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core)
        present = [item for item in schema.get("anyOf", ()) if item.get("type") != "null"]
        if len(present) == 1:
            schema = {**{k: v for k, v in schema.items() if k != "anyOf"}, **present[0]}
        return schema


class StartKernelRequest(BaseModel):
    """Body of POST /api/kernels. Both fields are optional."""

    model_config = ConfigDict(extra="ignore")

    name: str | None = Field(None, description="Kernelspec name; the default kernel when absent")
    # absent means none; null is a 400 like any other non-object
    env: Annotated[dict[str, str] | None, NullIsRefused()] = Field(
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

    @field_validator("env")
    @classmethod
    def _env_is_an_environment(cls, value: dict[str, str] | None) -> dict[str, str] | None:
        # what no process environment can hold (KG's Popen fails with a 500 on a listed one)
        if value and any("=" in k or "\x00" in k + v for k, v in value.items()):
            raise ValueError("env names may not contain '=' or NUL, nor values NUL")
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

    # optional here so that the route answers Jupyter Server's 400 messages; required in the document
    model_config = ConfigDict(extra="ignore", json_schema_extra={"required": ["path", "type"]})

    path: Annotated[str | None, NullIsRefused()] = None
    name: str | None = None
    type: Annotated[str | None, NullIsRefused()] = None
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


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for errors answered with an ErrorModel body, one per status."""
    return {status: {"model": ErrorModel, "description": HTTPStatus(status).phrase} for status in statuses}

"""The services REST API (`/api/services`, `/api/jobs`) and the wiring of the services personality into
an app: the dispatch middleware, the runtime on app.state and the combined OpenAPI document."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from starlette.datastructures import UploadFile
from starlette.requests import HTTPConnection

from app.config import Settings
from app.errors import BadRequest, Unprocessable
from app.http.service_dispatch import ServiceDispatchMiddleware
from app.routers.service_app import service_app_builder
from app.routers.service_models import ServiceModel, VersionEntry
from app.routers.tags import Tag
from app.schemas import error_responses
from app.services.runtime import ServicesRuntime
from app.services.spec import FIELDS

router = APIRouter(tags=[Tag.SERVICES])

_NAME = {"type": "string", "pattern": "^[a-z0-9][a-z0-9-]*$", "maxLength": 63}
_COUNT = ("pool_min", "pool_max", "body_limit")  # integers of at least 1; as form fields, their digits
_FORM_FIELDS = {
    f: {"type": "string", "pattern": "^[0-9]*$"} if f in _COUNT else {"type": "string"} for f in FIELDS
}
_JSON_FIELDS = {
    **{f: {"type": "string"} for f in FIELDS},
    **{f: {"type": "integer", "minimum": 1} for f in _COUNT},
    "timeout": {"type": "number", "exclusiveMinimum": 0},
    "env": {"type": "object", "additionalProperties": {"type": "string"}},
}


def _deploy_body(*, form_required: list[str], json_required: list[str]) -> dict[str, Any]:
    """A notebook upload (multipart) or a JSON object naming its source, with the service settings
    (spec.FIELDS); anything else is refused (unknown settings are a 422)."""
    form = {"notebook": {"type": "string", "format": "binary"}, "name": _NAME, **_FORM_FIELDS}
    source = {"type": "string", "minLength": 1, "description": "path under FASTKG_SERVICES_ROOT or URL"}
    return {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": form_required,
                    "properties": form,
                    "additionalProperties": False,
                }
            },
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": json_required,
                    "properties": {"name": _NAME, "source": source, **_JSON_FIELDS},
                    "additionalProperties": False,
                }
            },
        },
    }


DEPLOY_BODY = _deploy_body(form_required=["name", "notebook"], json_required=["name", "source"])
# PUT: settings left out keep their values, and without a notebook or source the active one is redeployed
UPDATE_BODY = _deploy_body(form_required=[], json_required=[])

# every route answers 503 until the lifespan has built the registry; bodies are 400 when they are neither a
# form nor a JSON object, 413 over FASTKG_SERVICES_MAX_UPLOAD, 422 when their content cannot be deployed
NAMED = error_responses(404, 503)
DEPLOYING = error_responses(400, 409, 413, 422, 503)


def get_runtime(connection: HTTPConnection) -> ServicesRuntime:
    runtime: ServicesRuntime | None = getattr(connection.app.state, "services_runtime", None)
    if runtime is None or runtime.registry.kernels is None:
        raise HTTPException(503, "The gateway is starting")
    return runtime


RuntimeDep = Annotated[ServicesRuntime, Depends(get_runtime)]
DeployInput = tuple[str | None, dict[str, Any], bytes | None, str | None]


async def _read_input(request: Request) -> DeployInput:
    """(name, settings, notebook bytes, source) from a form (multipart, or url-encoded without a file) or
    JSON body."""
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        # closed on every path: an upload is a temporary file
        async with request.form(max_files=1, max_fields=len(FIELDS) + 4) as form:
            values = dict(form.items())
            upload = values.pop("notebook", None)
            if upload is not None and not isinstance(upload, UploadFile):
                raise Unprocessable("notebook must be a file")
            raw = await upload.read() if upload is not None else None
            fields = {k: v for k, v in values.items() if isinstance(v, str)}
    elif media_type == "application/json":
        try:
            fields = json.loads(await request.body())
        except ValueError:
            raise BadRequest("Malformed JSON body") from None
        if not isinstance(fields, dict):
            raise BadRequest("The body must be a JSON object")
        raw = None
    else:
        raise BadRequest("Send the notebook as multipart/form-data, or a JSON object with a source")
    name = fields.pop("name", None)
    source = fields.pop("source", None)
    if name is not None and not isinstance(name, str):
        raise Unprocessable("name must be a string")
    if source is not None and not isinstance(source, str):
        raise Unprocessable("source must be a string")
    if raw is not None and source:
        raise Unprocessable("Send either a notebook file or a source, not both")
    return name, fields, raw, source or None


async def _notebook(runtime: ServicesRuntime, raw: bytes | None, source: str | None) -> bytes | None:
    return raw if source is None else await runtime.registry.sources.read(source)


@router.post(
    "/api/services",
    status_code=201,
    operation_id="deploy_service",
    openapi_extra={"requestBody": DEPLOY_BODY},
    responses={201: {"model": ServiceModel, "description": "The service, serving"}, **DEPLOYING},
)
async def deploy_service(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Deploy a notebook as a new service; answers once it serves (startup cells have run)."""
    name, fields, raw, source = await _read_input(request)
    if not name:
        raise Unprocessable("name is required")
    spec = runtime.registry.spec_from(name, fields)
    notebook = await _notebook(runtime, raw, source)
    if notebook is None:
        raise Unprocessable("Send a notebook file (multipart field 'notebook') or a source")
    service = await runtime.registry.deploy(spec, notebook, source)
    location = f"{request.app.state.settings.base_url}/api/services/{service.name}"
    return JSONResponse(service.stats(), status_code=201, headers={"Location": location})


@router.get(
    "/api/services",
    operation_id="list_services",
    response_model=list[ServiceModel],
    responses=error_responses(503),
)
async def list_services(runtime: RuntimeDep) -> list[dict[str, Any]]:
    """Every service."""
    return runtime.registry.stats()


@router.get("/api/services/{name}", operation_id="get_service", response_model=ServiceModel, responses=NAMED)
async def get_service(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    """One service."""
    return runtime.registry.get(name).stats()


@router.put(
    "/api/services/{name}",
    operation_id="update_service",
    openapi_extra={"requestBody": UPDATE_BODY},
    response_model=ServiceModel,
    responses={**NAMED, **DEPLOYING},
)
async def update_service(name: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Deploy a new version (a new notebook, new settings or both); the old one serves until it is ready.
    Settings left out keep their current values; without a notebook or source, the active notebook is
    redeployed with the new settings."""
    current = runtime.registry.get(name).spec.to_json()
    body_name, fields, raw, source = await _read_input(request)
    if body_name not in (None, name):
        raise Unprocessable(f"name {body_name!r} does not match the service {name!r}")
    del current["name"]
    spec = runtime.registry.spec_from(name, {**current, **fields})
    notebook = await _notebook(runtime, raw, source)
    return (await runtime.registry.update(name, spec, notebook, source)).stats()


@router.get(
    "/api/services/{name}/versions",
    operation_id="list_service_versions",
    response_model=list[VersionEntry],
    responses=NAMED,
)
async def list_service_versions(name: str, runtime: RuntimeDep) -> list[dict[str, Any]]:
    """The kept versions, newest first."""
    return runtime.registry.get(name).versions()


@router.post(
    "/api/services/{name}/rollback",
    operation_id="rollback_service",
    response_model=ServiceModel,
    responses={**NAMED, **error_responses(400, 409, 422)},  # 409: nothing to roll back to
)
async def rollback_service(name: str, request: Request, runtime: RuntimeDep) -> dict[str, Any]:
    """Activate an earlier version: `{"version": id}`, by default the one before the active one."""
    runtime.registry.get(name)
    body = await request.body()
    version: object = None
    if body.strip():
        try:
            payload = json.loads(body)
        except ValueError:
            raise BadRequest("Malformed JSON body") from None
        if not isinstance(payload, dict):
            raise BadRequest("The body must be a JSON object")
        version = payload.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise Unprocessable("version must be an integer id")
    return (await runtime.registry.rollback(name, version)).stats()


@router.post(
    "/api/services/{name}/reload",
    operation_id="reload_service",
    response_model=ServiceModel,
    responses={**NAMED, **error_responses(409, 422)},  # 409: an uploaded service has no source
)
async def reload_service(name: str, runtime: RuntimeDep) -> dict[str, Any]:
    """Re-read the service's source and deploy it as a new version."""
    return (await runtime.registry.reload(name)).stats()


@router.delete(
    "/api/services/{name}",
    status_code=204,
    operation_id="undeploy_service",
    responses={**NAMED, **error_responses(409)},  # 409: the root notebook
)
async def undeploy_service(name: str, runtime: RuntimeDep) -> Response:
    """Stop the service: its requests in flight finish, then its kernels are shut down."""
    await runtime.registry.undeploy(name)
    return Response(status_code=204)


@router.get(
    "/api/jobs/{job_id}",
    operation_id="get_job",
    response_class=Response,
    responses={
        200: {
            "description": "The endpoint's own response (its status, headers and body)",
            "content": {"*/*": {}},
        },
        202: {"description": "Still running: `{id, service, state}`", "content": {"application/json": {}}},
        **error_responses(404, 500, 503),  # 500: the request failed
    },
)
async def get_job(job_id: str, runtime: RuntimeDep) -> Response:
    """An asynchronous request: 202 with Retry-After while it runs, then the endpoint's own response."""
    job = runtime.jobs.get(job_id)
    if not job.done:
        return JSONResponse(job.summary(), status_code=202, headers={"Retry-After": "1"})
    if job.failed or not job.status:
        return JSONResponse({"reason": "Internal Server Error", "message": "The request failed"}, 500)
    response = Response(bytes(job.body), status_code=job.status)
    headers = [(k, v) for k, v in job.headers if k.lower() != b"content-length"]
    response.raw_headers = [*headers, (b"content-length", str(len(job.body)).encode())]
    return response


def install_services(app: FastAPI, settings: Settings) -> ServicesRuntime:
    """Add the services personality to an app (call before the outer middleware is installed)."""
    runtime = ServicesRuntime(settings, service_app_builder(settings.base_url))
    app.state.services_runtime = runtime
    app.include_router(router, prefix=settings.base_url)
    app.add_middleware(
        ServiceDispatchMiddleware,
        registry=runtime.registry,
        jobs=runtime.jobs,
        jobs_url=f"{settings.base_url}/api/jobs",
    )
    return runtime

"""REST routes for kernelspecs and their resource files."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.deps import KernelsDep, SettingsDep
from app.kernels.specs import SpecInfo, all_specs, one_spec, resource_path
from app.routers.tags import Tag
from app.schemas import KernelSpecFile, KernelSpecModel, KernelSpecsModel, error_responses

router = APIRouter(tags=[Tag.KERNELSPECS], responses=error_responses(404))
# a resource is a file of any type (logo-64x64.png, kernel.js ...)
RESOURCE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The file", "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}}}
}


def _model(info: SpecInfo, base_url: str) -> KernelSpecModel:
    resources = {key: f"{base_url}/kernelspecs/{info.name}/{file}" for key, file in info.resources.items()}
    return KernelSpecModel(name=info.name, spec=KernelSpecFile(**info.spec), resources=resources)


@router.get("/api/kernelspecs", operation_id="list_kernelspecs")
async def list_kernelspecs(
    kernels: KernelsDep, settings: SettingsDep, user: str | None = None
) -> KernelSpecsModel:
    """List the installed kernelspecs and the default one (`user` is accepted and ignored, as in KG)."""
    specs = await all_specs(kernels.specs)
    return KernelSpecsModel(
        default=kernels.default_kernel_name,
        kernelspecs={name: _model(info, settings.base_url) for name, info in specs.items()},
    )


@router.get("/api/kernelspecs/{name}", operation_id="get_kernelspec")
async def get_kernelspec(name: str, kernels: KernelsDep, settings: SettingsDep) -> KernelSpecModel:
    """Get one kernelspec."""
    return _model(await one_spec(kernels.specs, name), settings.base_url)


@router.get(
    "/kernelspecs/{name}/{path:path}",
    operation_id="get_kernelspec_resource",
    response_class=FileResponse,
    responses=RESOURCE,
)
async def get_kernelspec_resource(name: str, path: str, kernels: KernelsDep) -> FileResponse:
    """A kernelspec resource file, such as its logo."""
    return FileResponse(await resource_path(kernels.specs, name, path))

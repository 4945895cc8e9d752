"""REST routes for kernels: list, start, get, shut down, interrupt, restart."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, Response, status

from app.deps import KernelsDep, SettingsDep
from app.errors import Forbidden
from app.routers.models import kernel_model
from app.routers.tags import Tag
from app.schemas import KernelModel, StartKernelRequest, error_responses

router = APIRouter(prefix="/api/kernels", tags=[Tag.KERNELS], responses=error_responses(404))


@router.get("", operation_id="list_kernels", responses=error_responses(403))
async def list_kernels(kernels: KernelsDep, settings: SettingsDep) -> list[KernelModel]:
    """List running kernels. Forbidden unless KG_LIST_KERNELS is enabled, as in Kernel Gateway."""
    if not settings.list_kernels:
        raise Forbidden("Forbidden")  # KG's exact answer
    return [kernel_model(k) for k in kernels.running()]


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    operation_id="start_kernel",
    responses=error_responses(403, 500, 503),  # KG_MAX_KERNELS, a failed start, the gateway shutting down
)
async def start_kernel(
    request: Request,
    response: Response,
    kernels: KernelsDep,
    body: Annotated[StartKernelRequest | None, Body()] = None,
) -> KernelModel:
    """Start a kernel (seeded when KG_SEED_URI applies) and return it once it is ready."""
    body = body or StartKernelRequest()
    kernel = await kernels.start(body.name, body.env)
    response.headers["Location"] = f"{request.url.path}/{kernel.id}"
    return kernel_model(kernel)


@router.get("/{kernel_id}", operation_id="get_kernel")
async def get_kernel(kernel_id: str, kernels: KernelsDep) -> KernelModel:
    """Get one kernel's model."""
    return kernel_model(kernels.get(kernel_id))


@router.delete("/{kernel_id}", status_code=status.HTTP_204_NO_CONTENT, operation_id="shutdown_kernel")
async def shutdown_kernel(kernel_id: str, kernels: KernelsDep) -> None:
    """Shut a kernel down and close its websockets."""
    await kernels.shutdown(kernel_id)


@router.post(
    "/{kernel_id}/interrupt",
    status_code=status.HTTP_204_NO_CONTENT,
    operation_id="interrupt_kernel",
    responses=error_responses(503),  # FASTKG_INTERRUPT_TIMEOUT passed
)
async def interrupt_kernel(kernel_id: str, kernels: KernelsDep) -> None:
    """Interrupt what the kernel is running."""
    await kernels.interrupt(kernel_id)


@router.post("/{kernel_id}/restart", operation_id="restart_kernel", responses=error_responses(500))
async def restart_kernel(kernel_id: str, kernels: KernelsDep) -> KernelModel:
    """Restart the kernel; open websockets keep working."""
    return kernel_model(await kernels.restart(kernel_id))

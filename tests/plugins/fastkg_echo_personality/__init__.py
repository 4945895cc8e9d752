"""An example plug-in personality: routes that use the gateway's kernel service.

Found by entry-point name (KG_API=echo, see ../fastkg_echo_personality-0.1.dist-info) or by module
name (KG_API=fastkg_echo_personality) when this directory's parent is on sys.path.
"""

from __future__ import annotations

import sys

from fastapi import APIRouter
from pydantic import BaseModel

from app.plugins import GatewayServices

NO_SEED = "# echo: do not seed"


class RunRequest(BaseModel):
    code: str


class EchoPersonality:
    def __init__(self, gateway: GatewayServices) -> None:
        self.gateway = gateway

    def create_router(self) -> APIRouter:
        router = APIRouter(prefix="/echo", tags=["echo"])
        gateway = self.gateway

        @router.get("/kernels")
        async def count_kernels() -> dict[str, int]:
            return {"count": len(gateway.kernels)}

        @router.post("/run")
        async def run_code(body: RunRequest) -> dict[str, str]:
            """Run code on a new kernel (seeded as every kernel is), then shut it down."""
            kernel = await gateway.kernels.start()
            try:
                result = await kernel.executor.execute(body.code, 30)
            finally:
                await gateway.kernels.shutdown(kernel.id)
            return {"status": result.status, "stdout": result.text}

        return router

    def should_seed_cell(self, code: str) -> bool:
        return NO_SEED not in code

    async def shutdown(self) -> None:
        print("echo personality: shut down", file=sys.stderr, flush=True)


def create_personality(gateway: GatewayServices) -> EchoPersonality:
    return EchoPersonality(gateway)

"""jupyter_client's kernel manager, telling the gateway when a restart is done (requested or automatic).

The restarter fires its "restart" callback *before* it restarts a kernel, and nothing after; a kernel that
a remote provisioner launched again elsewhere must then be followed to its new address.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from jupyter_client.ioloop.manager import AsyncIOLoopKernelManager


class GatewayKernelManager(AsyncIOLoopKernelManager):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.after_restart: list[Callable[[], None]] = []

    async def restart_kernel(  # type: ignore[override]  # the async manager's, not KernelManager's
        self, now: bool = False, newports: bool = False, **kw: Any
    ) -> None:
        await super().restart_kernel(now=now, newports=newports, **kw)
        for callback in tuple(self.after_restart):
            callback()

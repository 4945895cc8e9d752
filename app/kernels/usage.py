"""A kernel's CPU and memory: ipykernel's `usage_request` on the control channel (works for remote
kernels too), else the local kernel process measured with psutil."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import psutil

from app.kernels.channels import Channel, ChannelFull
from app.kernels.wire import DELIMITER

if TYPE_CHECKING:
    from app.kernels.kernel import Kernel

USAGE_TIMEOUT = 1.0
CACHE_SECONDS = 4.0
RETRY_SILENT_SECONDS = 60.0  # ask a kernel that did not answer again after this (it may have been busy)


@dataclass(frozen=True)
class Usage:
    cpu_percent: float | None
    memory_bytes: int | None
    source: str  # "kernel" (usage_request) or "process" (psutil on the local process)


class UsageProbe:
    """Asks each kernel at most once per CACHE_SECONDS; remembers kernels that do not answer."""

    def __init__(self) -> None:
        self._cache: dict[str, tuple[float, Usage | None]] = {}
        self._silent: dict[str, float] = {}  # kernels that did not answer usage_request, and when
        self._processes: dict[int, psutil.Process] = {}

    async def usage(self, kernel: Kernel) -> Usage | None:
        cached = self._cache.get(kernel.id)
        if cached is not None and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        now = time.monotonic()
        silent_since = self._silent.get(kernel.id)
        ask = silent_since is None or now - silent_since > RETRY_SILENT_SECONDS
        result = await self._ask(kernel) if ask else None
        if result is None:
            if ask:
                self._silent[kernel.id] = now
            result = await asyncio.to_thread(self._measure_process, kernel)
        self._cache[kernel.id] = (time.monotonic(), result)
        return result

    def forget(self, alive: set[str]) -> None:
        """Drop what is known of kernels that are gone."""
        for kernel_id in set(self._cache) - alive:
            self._cache.pop(kernel_id, None)
            self._silent.pop(kernel_id, None)

    async def _ask(self, kernel: Kernel) -> Usage | None:
        loop = asyncio.get_running_loop()
        reply: asyncio.Future[dict[str, Any]] = loop.create_future()

        def on_frames(frames: list[bytes]) -> None:
            message = kernel.decode(frames, "control")
            if message is not None and message.msg_type == "usage_reply" and not reply.done():
                reply.set_result(message.content)

        channel = Channel(
            kernel.context, kernel.connection_info, "control", on_frames, uuid.uuid4().hex.encode()
        )
        try:
            parts = kernel.message_parts("usage_request", {})
            # signed and sent directly, not through Kernel.send: asking is not activity (culling)
            channel.send([DELIMITER, kernel.session.sign(parts), *parts])
            async with asyncio.timeout(USAGE_TIMEOUT):
                content = await reply
        except (TimeoutError, ChannelFull):
            return None
        finally:
            channel.close()
        cpu, memory = content.get("kernel_cpu"), content.get("kernel_memory")
        if not isinstance(cpu, (int, float)) or not isinstance(memory, int):
            return None  # ipykernel without psutil answers without the numbers
        return Usage(float(cpu), memory, "kernel")

    def _measure_process(self, kernel: Kernel) -> Usage | None:
        process_handle = getattr(getattr(kernel.manager, "provisioner", None), "process", None)
        pid = getattr(process_handle, "pid", None)
        if not isinstance(pid, int):
            return None
        with contextlib.suppress(psutil.Error):
            process = self._processes.get(pid)
            if process is None:
                process = self._processes[pid] = psutil.Process(pid)
            return Usage(process.cpu_percent(None), int(process.memory_info().rss), "process")
        self._processes.pop(pid, None)
        return None


__all__ = ["Usage", "UsageProbe"]

"""Seed cells: code run on every new kernel of one kernelspec before anyone can use it."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from app.errors import SeedFailed
from app.kernels.executor import Executor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Seed:
    """The code cells to run, and the kernelspec they are for (KG seeds only kernels of that spec)."""

    kernel_name: str
    sources: tuple[str, ...]

    def applies_to(self, kernel_name: str) -> bool:
        return kernel_name == self.kernel_name and bool(self.sources)

    async def run(self, executor: Executor, time_limit: float) -> None:
        """Run every cell in order; the first error fails the kernel (KG answers 500)."""
        for index, source in enumerate(self.sources):
            result = await executor.execute(source, time_limit)
            if not result.ok:
                log.error("seed cell %d failed on kernel %s: %s", index, executor.kernel.id, result.ename)
                raise SeedFailed(f"Seed cell {index} failed: {result.ename}: {result.evalue}")

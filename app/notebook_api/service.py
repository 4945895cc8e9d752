"""A notebook served as an HTTP API: its endpoints, its own kernel pool and its specs, as one unit."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from app.kernels.pool import KernelPool
from app.notebook_api.handler import HandlerOptions, NotebookResponse, handle
from app.notebook_api.loader import LoadedNotebook
from app.notebook_api.parsers import Endpoint, NotebookError, ParsedNotebook
from app.notebook_api.spec import swagger_document

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NotebookOptions:
    pool_size: int
    timeout: float
    debug: bool
    allow_download: bool
    static_path: str | None


def parse_notebook(notebook: LoadedNotebook, *, swagger: bool) -> ParsedNotebook:
    """The notebook's endpoints; a notebook with none cannot be served."""
    parsed = notebook.parse(swagger=swagger)
    for warning in parsed.warnings:
        log.warning("%s: %s", notebook.name, warning)
    if not parsed.endpoints:
        raise NotebookError(f"notebook {notebook.name!r} has no annotated cells, so there is no API to serve")
    return parsed


class NotebookService:
    """Routes requests for one notebook's endpoints to its kernel pool."""

    def __init__(
        self, notebook: LoadedNotebook, parsed: ParsedNotebook, pool: KernelPool, options: NotebookOptions
    ) -> None:
        self.notebook = notebook
        self.parsed = parsed
        self.pool = pool
        self.options = options
        self.loaded_at = time.time()
        self._handler_options = HandlerOptions(notebook.language, options.timeout, options.debug)

    @property
    def name(self) -> str:
        return self.notebook.name

    @property
    def endpoints(self) -> list[Endpoint]:
        return self.parsed.endpoints

    def swagger(self, base_path: str = "") -> dict[str, Any]:
        return swagger_document(self.name, self.endpoints, base_path=base_path, document=self.parsed.swagger)

    def swagger_json(self, base_path: str = "") -> str:
        """The Swagger document as KG writes it (`json.dumps` with its default separators)."""
        return json.dumps(self.swagger(base_path))

    async def call(self, endpoint: Endpoint, request: dict[str, object], accept: str) -> NotebookResponse:
        return await handle(self.pool, endpoint, request, accept, self._handler_options)

    async def close(self) -> None:
        await self.pool.close()

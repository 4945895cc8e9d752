"""Load the seed notebook from a local path, a file: URI or an http(s) URL."""

from __future__ import annotations

import asyncio
import posixpath
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

import httpx

from app.notebook_api.parsers import (
    NotebookError,
    ParsedNotebook,
    comment_prefix,
    parse_annotated_cells,
    parse_swagger_cells,
)

if TYPE_CHECKING:
    import nbformat


@dataclass(frozen=True)
class LoadedNotebook:
    """A parsed nbformat-4 notebook plus what notebook-http mode needs to know about it."""

    name: str
    notebook: nbformat.NotebookNode
    kernel_name: str
    language: str
    comment_prefix: str
    raw: bytes

    def code_sources(self) -> list[str]:
        """Sources of the code cells in notebook order (KG's seed_source)."""
        return [source for kind, source in self.cells() if kind == "code"]

    def cells(self) -> list[tuple[str, str]]:
        """(cell_type, source) of every cell in notebook order."""
        return [(str(cell.get("cell_type", "")), str(cell.get("source", ""))) for cell in self.notebook.cells]

    def parse(self, *, swagger: bool = False) -> ParsedNotebook:
        """Endpoints by KG's annotation grammar, or by its Swagger operationId grammar."""
        if swagger:
            return parse_swagger_cells(self.cells(), self.comment_prefix)
        return parse_annotated_cells(self.code_sources(), self.comment_prefix)


async def load_notebook(uri: str, *, timeout: float = 30.0) -> LoadedNotebook:  # noqa: ASYNC109 (httpx timeout)
    """Read and parse the notebook at `uri`; every failure is a NotebookError with a one-line message."""
    parts = urlparse(uri)
    if parts.scheme in ("http", "https"):
        raw = await _fetch(uri, timeout)
        file_name = posixpath.basename(unquote(parts.path))
    else:
        path = _local_path(uri)
        raw = await _read(path, uri)
        file_name = path.name
    return _notebook(raw, file_name, uri)


def read_notebook_bytes(raw: bytes, file_name: str, uri: str = "") -> LoadedNotebook:
    """Parse notebook bytes already in hand (an upload, a stored version); NotebookError if invalid."""
    return _notebook(raw, file_name, uri or file_name)


def notebook_name(file_name: str) -> str:
    """KG's API title rule: the file name up to its first dot (`simple_api.ipynb` -> `simple_api`)."""
    return file_name.split(".")[0] if file_name.find(".") > 0 else file_name


def _local_path(uri: str) -> Path:
    parts = urlparse(uri)
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise NotebookError(f"Cannot load notebook {uri}: only local file: URIs are supported")
        return Path(url2pathname(parts.path))
    return Path(uri).expanduser()


async def _read(path: Path, uri: str) -> bytes:
    try:
        return await asyncio.to_thread(path.read_bytes)
    except OSError as exc:
        raise NotebookError(f"Cannot read notebook {uri}: {exc.strerror or exc}") from None


async def _fetch(uri: str, http_timeout: float) -> bytes:
    try:
        async with httpx.AsyncClient(timeout=http_timeout, follow_redirects=True) as client:
            response = await client.get(uri)
            response.raise_for_status()
            return response.content
    except httpx.HTTPStatusError as exc:
        raise NotebookError(f"Cannot fetch notebook {uri}: HTTP {exc.response.status_code}") from None
    except (httpx.HTTPError, httpx.InvalidURL) as exc:  # InvalidURL: e.g. a control character
        raise NotebookError(f"Cannot fetch notebook {uri}: {exc or type(exc).__name__}") from None


def _notebook(raw: bytes, file_name: str, uri: str) -> LoadedNotebook:
    import nbformat  # slow to import (jsonschema); only notebook users pay for it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # nbformat warns about e.g. missing cell ids in old notebooks
            notebook = nbformat.reads(raw.decode("utf-8"), as_version=4)  # type: ignore[no-untyped-call]
        metadata = notebook.get("metadata", {})
        kernelspec, language_info = metadata.get("kernelspec", {}), metadata.get("language_info", {})
        language = str(language_info.get("name") or kernelspec.get("language") or "python")
        kernel_name = str(kernelspec.get("name") or "")
        cells = notebook.cells
    except Exception as exc:  # nbformat raises many types (JSON, schema, version, attribute errors)
        raise NotebookError(f"Cannot parse notebook {uri}: {_reason(exc)}") from None
    if not isinstance(cells, list):
        raise NotebookError(f"Cannot parse notebook {uri}: 'cells' is not a list")
    return LoadedNotebook(
        name=notebook_name(file_name),
        notebook=notebook,
        kernel_name=kernel_name,
        language=language,
        comment_prefix=comment_prefix(language),
        raw=raw,
    )


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__

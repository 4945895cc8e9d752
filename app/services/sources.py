"""Where a service's notebook comes from: a path under FASTKG_SERVICES_ROOT or an http(s) URL."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlparse

from app.errors import Unprocessable
from app.notebook_api.loader import load_notebook
from app.notebook_api.parsers import NotebookError


class Sources:
    """Reads notebook bytes from an allowed source; anything else is a 422 saying why."""

    def __init__(self, root: str | None, max_bytes: int) -> None:
        self.root = Path(root).expanduser().resolve() if root else None
        self.max_bytes = max_bytes

    def local_path(self, source: str) -> Path:
        """The resolved file for a path source; symlinks and `..` may not lead outside the root."""
        if self.root is None:
            raise Unprocessable("A path source needs FASTKG_SERVICES_ROOT; upload the notebook instead")
        candidate = Path(source)
        path = (candidate if candidate.is_absolute() else self.root / candidate).resolve()
        if not path.is_relative_to(self.root):
            raise Unprocessable(f"source {source!r} is outside the services root")
        return path

    async def read(self, source: str) -> bytes:
        if "\x00" in source:  # no path or URL holds one; the OS would refuse it with a ValueError
            raise Unprocessable("source may not contain a NUL character")
        try:
            scheme = urlparse(source).scheme
        except ValueError as exc:  # e.g. an unclosed IPv6 bracket: http://[x
            raise Unprocessable(f"Invalid source {source!r}: {exc}") from None
        if scheme in ("http", "https"):
            try:
                return (await load_notebook(source)).raw
            except NotebookError as exc:
                raise Unprocessable(str(exc)) from None
        if scheme not in ("", "file") and len(scheme) > 1:
            raise Unprocessable(f"source must be a path under the services root or an http(s) URL: {source}")
        if scheme == "file":
            source = urlparse(source).path
        path = await asyncio.to_thread(self.local_path, source)
        try:
            size = (await asyncio.to_thread(path.stat)).st_size
            if size > self.max_bytes:
                raise Unprocessable(f"source {source!r} exceeds {self.max_bytes} bytes")
            return await asyncio.to_thread(path.read_bytes)
        except OSError as exc:
            raise Unprocessable(f"Cannot read source {source!r}: {exc.strerror or exc}") from None

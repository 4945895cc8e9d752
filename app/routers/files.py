"""Files served as Tornado's StaticFileHandler serves them (KG's `/public/` and `/_api/source`).

Tornado's rules, matched so caches and download tools see what KG sends: `Content-Type` from
`mimetypes` with no charset (`application/octet-stream` when unknown), `Etag` the quoted SHA-512 of
the content, `Last-Modified`, `Accept-Ranges: bytes`, one byte range per request (206, or 416 with
`Content-Range: bytes */<size>`; several ranges get the whole file), and 304 for a matching
`If-None-Match` (weak comparison, `*`) or, without it, an `If-Modified-Since` not before the file.
"""

from __future__ import annotations

import asyncio
import hashlib
import mimetypes
import os
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime
from pathlib import Path

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from app.http.etag import etag_matches


@dataclass(frozen=True)
class FileContent:
    data: bytes
    modified: int  # whole seconds since the epoch, as Tornado compares them
    media_type: str

    @property
    def etag(self) -> str:
        return f'"{hashlib.sha512(self.data).hexdigest()}"'


def content_type(name: str) -> str:
    """Tornado's StaticFileHandler.get_content_type for a file name."""
    mime_type, encoding = mimetypes.guess_type(name)
    if encoding == "gzip":
        return "application/gzip"
    if encoding is not None or mime_type is None:
        return "application/octet-stream"
    return mime_type


def file_response(content: FileContent, headers: Headers, method: str) -> Response:
    """The response to a GET or HEAD of `content`, with Tornado's validators and range handling."""
    etag = content.etag
    base = {
        "Accept-Ranges": "bytes",
        "Etag": etag,
        "Last-Modified": formatdate(content.modified, usegmt=True),
    }
    if _not_modified(headers, etag, content.modified):
        return Response(status_code=304, headers=base)
    size = len(content.data)
    start: int | None = None
    end: int | None = None
    status = 200
    requested = _parse_range(headers.get("range", ""))
    if requested is not None:
        start, end = requested
        if start is not None and start < 0:
            start = max(start + size, 0)
        if (start is not None and (start >= size or (end is not None and start >= end))) or end == 0:
            unsatisfiable = {**base, "Content-Type": "text/plain", "Content-Range": f"bytes */{size}"}
            return Response(status_code=416, headers=unsatisfiable)
        if end is not None and end > size:
            end = size
        if size != (end or size) - (start or 0):
            status = 206
            base["Content-Range"] = f"bytes {start or 0}-{(end or size) - 1}/{size}"
    part = content.data[start:end]
    headers_out = {**base, "Content-Type": content.media_type}
    if method == "HEAD":
        return Response(status_code=status, headers={**headers_out, "Content-Length": str(len(part))})
    return Response(part, status_code=status, headers=headers_out)


def _not_modified(headers: Headers, etag: str, modified: int) -> bool:
    if_none_match = headers.get("if-none-match")
    if if_none_match:
        return etag_matches(if_none_match, etag)
    since = headers.get("if-modified-since")
    if not since:
        return False
    try:
        return int(parsedate_to_datetime(since).timestamp()) >= modified
    except (TypeError, ValueError, IndexError):
        return False


def _parse_range(header: str) -> tuple[int | None, int | None] | None:
    """Tornado's _parse_request_range: one `bytes=a-b` range as slice indexes, else None."""
    unit, _, value = header.partition("=")
    if unit.strip() != "bytes":
        return None
    first_text, _, last_text = value.strip().partition("-")
    try:
        first = int(first_text) if first_text.strip() else None
        last = int(last_text) if last_text.strip() else None
    except ValueError:
        return None
    if last is not None:
        if first is None:
            if last != 0:  # a suffix range: the last `last` bytes; `bytes=-0` stays (None, 0)
                first, last = -last, None
        else:
            last += 1
    return first, last


async def read_public_file(root: Path, relative: str) -> FileContent:
    """A file under `root` (404 if missing or outside it, 403 for a directory), read off the loop."""
    return await asyncio.to_thread(_read_public_file, root, relative)


def _read_public_file(root: Path, relative: str) -> FileContent:
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base) or not path.exists():
        raise StarletteHTTPException(404)
    if not path.is_file():
        raise StarletteHTTPException(403, f"{relative or '/'} is not a file")
    stat = path.stat()
    return FileContent(path.read_bytes(), int(stat.st_mtime), content_type(os.fspath(path)))

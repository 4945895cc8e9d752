"""Tornado's automatic Etag (RequestHandler.finish): every GET/HEAD 200 gets the quoted SHA-1 of its body,
and a matching `If-None-Match` turns it into a 304 without body or representation headers."""

from __future__ import annotations

import hashlib
import re

from starlette.datastructures import Headers
from starlette.responses import Response

_ENTITY_TAGS = re.compile(r'\*|(?:W/)?"[^"]*"')
# Tornado's _clear_representation_headers: what a 304 must not carry.
_DROPPED_ON_304 = frozenset({b"content-encoding", b"content-language", b"content-type", b"content-length"})


def body_etag(body: bytes) -> str:
    return f'"{hashlib.sha1(body, usedforsecurity=False).hexdigest()}"'


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Tornado's check_etag_header: `*`, or any listed tag equal to `etag` under weak comparison."""
    tags = _ENTITY_TAGS.findall(if_none_match)
    if not etag or not tags:
        return False
    if tags[0] == "*":
        return True
    return any(tag.removeprefix("W/") == etag.removeprefix("W/") for tag in tags)


def with_etag(response: Response, method: str, request_headers: Headers) -> Response:
    """Apply Tornado's rule to a fully buffered response (a response that already has an Etag keeps it)."""
    if response.status_code != 200 or method not in ("GET", "HEAD") or "etag" in response.headers:
        return response
    etag = body_etag(bytes(response.body))
    response.headers["Etag"] = etag
    if not etag_matches(request_headers.get("if-none-match", ""), etag):
        return response
    not_modified = Response(status_code=304)
    not_modified.raw_headers = [(k, v) for k, v in response.raw_headers if k not in _DROPPED_ON_304]
    return not_modified

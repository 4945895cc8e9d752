"""Pure pieces of the HTTP edge that mirror Tornado: Etag comparison, the request-line encoder, ranges."""

from __future__ import annotations

import pytest
from starlette.datastructures import Headers

from app.http.etag import body_etag, etag_matches
from app.http.protocol import encode_request_line
from app.routers.files import FileContent, content_type, file_response


def test_body_etag_is_tornados_quoted_sha1() -> None:
    assert body_etag(b"") == '"da39a3ee5e6b4b0d3255bfef95601890afd80709"'


@pytest.mark.parametrize(
    ("header", "matches"),
    [
        ('"a"', True),
        ('W/"a"', True),
        ('"b", W/"a"', True),
        ("*", True),
        ('"b"', False),
        ("a", False),
        ("", False),
    ],
)
def test_if_none_match_uses_weak_comparison(header: str, matches: bool) -> None:
    assert etag_matches(header, '"a"') is matches


def test_only_the_request_line_is_percent_encoded() -> None:
    data = "GET /x?q=\u2603 HTTP/1.1\r\nX-Name: caf\u00e9\r\n\r\n".encode()
    assert encode_request_line(data) == b"GET /x?q=%E2%98%83 HTTP/1.1\r\nX-Name: caf\xc3\xa9\r\n\r\n"
    assert encode_request_line(b"GET / HTTP/1.1\r\n") == b"GET / HTTP/1.1\r\n"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("a.html", "text/html"),
        ("a.tar.gz", "application/gzip"),
        ("a.unknown-ext", "application/octet-stream"),
    ],
)
def test_content_type_is_tornados(name: str, expected: str) -> None:
    assert content_type(name) == expected


@pytest.mark.parametrize(
    ("range_header", "status", "body", "content_range"),
    [
        ("bytes=1-2", 206, b"12", "bytes 1-2/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=-30", 200, b"0123456789", None),
        ("bytes=0-99", 200, b"0123456789", None),
        ("bytes=1-2,4-5", 200, b"0123456789", None),
        ("bytes=10-", 416, b"", "bytes */10"),
        ("bytes=-0", 416, b"", "bytes */10"),
        ("items=1-2", 200, b"0123456789", None),
    ],
)
def test_ranges_follow_tornado(
    range_header: str, status: int, body: bytes, content_range: str | None
) -> None:
    content = FileContent(b"0123456789", 0, "text/plain")
    response = file_response(content, Headers({"range": range_header}), "GET")
    assert (response.status_code, response.body) == (status, body)
    assert response.headers.get("content-range") == content_range

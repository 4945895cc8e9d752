"""Tokens never reach a log record: query strings, Authorization headers, uvicorn access lines."""

from __future__ import annotations

import io
import logging
import logging.config
from collections.abc import Iterator

import pytest

from app.logs import TokenScrubFilter, configure_logging, scrub

SECRET = "s3cr3t-T0ken_value"


@pytest.mark.parametrize(
    "text",
    [
        f"GET /api/kernels?token={SECRET} HTTP/1.1",
        f"GET /api/kernels/abc/channels?session_id=x&token={SECRET}&other=1",
        f"/api?TOKEN={SECRET}",
        f"Authorization: token {SECRET}",
        f"authorization: Bearer {SECRET}",
        f"headers={{'authorization': 'token {SECRET}'}}",
        f'{{"Authorization": "token {SECRET}"}}',
        f"token: {SECRET}",
        f"token={SECRET}",
    ],
)
def test_scrub_removes_token(text: str) -> None:
    scrubbed = scrub(text)
    assert SECRET not in scrubbed
    assert "[secret]" in scrubbed


def test_scrub_keeps_other_text() -> None:
    line = "GET /api/kernels?session_id=abc&token=xyz&x=1 HTTP/1.1 200"
    scrubbed = scrub(line)
    assert scrubbed.startswith("GET /api/kernels?session_id=abc&token=")
    assert scrubbed.endswith("&x=1 HTTP/1.1 200")
    assert scrub("nothing to hide here") == "nothing to hide here"


def make_record(msg: str, args: tuple[object, ...] | None) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, msg, args, None)


def test_filter_scrubs_access_log_arguments() -> None:
    # uvicorn's access logger: '%s - "%s %s HTTP/%s" %d' with the path (and query) as an argument
    record = make_record(
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5555", "GET", f"/api/kernels?token={SECRET}", "1.1", 200),
    )
    assert TokenScrubFilter().filter(record) is True
    message = record.getMessage()
    assert SECRET not in message
    assert "/api/kernels?token=[secret]" in message
    assert message.endswith(" 200")


def test_filter_scrubs_message_and_header_dumps() -> None:
    record = make_record(f"request headers Authorization: token {SECRET}", None)
    TokenScrubFilter().filter(record)
    assert SECRET not in record.getMessage()


@pytest.mark.parametrize("fmt", ["using token=%s", "Authorization: token %s", "auth token: %s (%d)"])
def test_filter_scrubs_token_passed_as_argument(fmt: str) -> None:
    # Scrubbing only the format string would eat the placeholder and leave the token in args,
    # which logging then prints verbatim when formatting fails.
    args: tuple[object, ...] = (SECRET, 7) if "%d" in fmt else (SECRET,)
    record = make_record(fmt, args)
    TokenScrubFilter().filter(record)
    message = record.getMessage()
    assert SECRET not in message
    assert SECRET not in repr(record.args)
    assert "[secret]" in message


def test_filter_leaves_non_string_args() -> None:
    record = make_record("%d kernels, %s", (3, f"?token={SECRET}"))
    TokenScrubFilter().filter(record)
    assert record.getMessage() == "3 kernels, ?token=[secret]"


@pytest.fixture
def configured_root() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.level, list(root.handlers), [list(h.filters) for h in root.handlers])
    config = configure_logging("info")
    logging.config.dictConfig(config)
    stream = io.StringIO()
    for handler in root.handlers:
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(stream)
    try:
        yield stream
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = saved[1]
        root.setLevel(saved[0])


def test_configured_logging_scrubs_every_logger(configured_root: io.StringIO) -> None:
    logging.getLogger("uvicorn.error").warning("rejected %s", f"/api?token={SECRET}")
    logging.getLogger("app.something").info("header authorization: token %s", SECRET)
    logging.getLogger("uvicorn.access").warning('%s "%s"', "1.2.3.4", f"GET /x?token={SECRET}")
    output = configured_root.getvalue()
    assert "rejected /api?token=[secret]" in output
    assert output.count("[secret]") == 3
    assert SECRET not in output

"""uvicorn's h11 HTTP protocol, tolerant of what Tornado (KG) accepts on the request line.

- Any method token reaches the app (httptools, uvicorn's default parser, refuses methods it does not
  know with a plain-text 400; KG answers an unknown method with a JSON 405).
- Raw bytes above 0x7f in the request target (curl sends `?q=☃` unencoded) are percent-encoded before
  h11 parses the line, so `GET /echo?q=☃` is `GET /echo?q=%E2%98%83` (h11 and httptools refuse them).
"""

from __future__ import annotations

import re

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

_HIGH_BYTE = re.compile(rb"[\x80-\xff]")


def encode_request_line(data: bytes) -> bytes:
    """Percent-encode the bytes above 0x7f before the first line feed of `data` (the request line)."""
    line, separator, rest = data.partition(b"\n")
    if not _HIGH_BYTE.search(line):
        return data
    return _HIGH_BYTE.sub(lambda found: b"%%%02X" % found[0][0], line) + separator + rest


class TolerantH11Protocol(H11Protocol):
    def data_received(self, data: bytes) -> None:
        # Only while h11 waits for a request whose line has not ended yet does `data` hold (part of) a
        # request line; a pipelined request already buffered is parsed as it is.
        if self.conn.their_state is h11.IDLE and b"\n" not in self.conn.trailing_data[0]:
            data = encode_request_line(data)
        super().data_received(data)

"""CORS as a browser enforces it: headless Chromium runs a page from one loopback origin whose fetch() with
an Authorization header (so, a real preflight) goes to the real `fastkg` command on another port."""

from __future__ import annotations

import contextlib
import html
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.blackbox.test_docs_browser import render
from tests.support import fastkg_process, free_port

TOKEN = "cors-browser-token"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>cors probe</title></head>
<body><pre id="out">pending</pre>
<script>
const out = document.getElementById("out");
fetch({url}, {{method: "GET", headers: {{"Authorization": "token {token}"}}}})
  .then(r => r.json().then(j => {{ out.textContent = "ok " + r.status + " " + j["default"]; }}))
  .catch(e => {{ out.textContent = "failed " + e.name; }});
</script></body></html>
"""


@contextlib.contextmanager
def page_server(page: str) -> Iterator[int]:
    """Serve `page` at every path on a loopback port; yield the port."""
    body = page.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def result_of(dom: str) -> str:
    start = dom.index('<pre id="out">') + len('<pre id="out">')
    return html.unescape(dom[start : dom.index("</pre>", start)])


@pytest.mark.timeout(300)
def test_browser_fetch_with_a_token_from_each_allowed_origin(tmp_path: Path) -> None:
    gateway_port = free_port()
    page = PAGE.format(url=repr(f"http://127.0.0.1:{gateway_port}/api/kernelspecs"), token=TOKEN)
    with page_server(page) as port_a, page_server(page) as port_c:
        allowed = [f"http://127.0.0.1:{port_a}", f"http://localhost:{port_a}"]
        env = {
            "KG_PORT": str(gateway_port),
            "KG_AUTH_TOKEN": TOKEN,
            "KG_ALLOW_ORIGIN": ",".join(allowed),
            "KG_ALLOW_HEADERS": "Authorization,Content-Type",
            "KG_ALLOW_METHODS": "GET,POST,DELETE",
        }
        with fastkg_process(env, tmp_path) as gateway:
            assert gateway.url == f"http://127.0.0.1:{gateway_port}"
            # both listed origins (two hosts of one port are two origins) get through the preflight
            for origin in allowed:
                assert result_of(render(f"{origin}/probe.html", tmp_path)) == "ok 200 python3", origin
            # an origin that is not listed is refused by the browser (a TypeError, not a response)
            foreign = f"http://127.0.0.1:{port_c}"
            assert result_of(render(f"{foreign}/probe.html", tmp_path)) == "failed TypeError"

"""Loading the seed notebook from disk, file: URIs and a real local HTTP server."""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import nbformat
import pytest

from app.notebook_api.loader import load_notebook, notebook_name
from app.notebook_api.parsers import NotebookError


def _write(path: Path, cells: list[Any], **metadata: Any) -> bytes:
    notebook = nbformat.v4.new_notebook(cells=cells, metadata=metadata)
    nbformat.write(notebook, str(path))
    return path.read_bytes()


def _api_cells() -> list[Any]:
    return [
        nbformat.v4.new_markdown_cell("# GET /not-code"),
        nbformat.v4.new_code_cell("import json"),
        nbformat.v4.new_code_cell("# GET /hello\nprint('hi')"),
    ]


async def test_local_notebook(tmp_path: Path) -> None:
    path = tmp_path / "api.ipynb"
    raw = _write(
        path,
        _api_cells(),
        kernelspec={"name": "python3", "language": "python", "display_name": "Python 3"},
        language_info={"name": "python"},
    )
    loaded = await load_notebook(str(path))
    assert (loaded.name, loaded.kernel_name, loaded.language, loaded.comment_prefix) == (
        "api",
        "python3",
        "python",
        "#",
    )
    assert loaded.raw == raw
    assert loaded.cells() == [
        ("markdown", "# GET /not-code"),
        ("code", "import json"),
        ("code", "# GET /hello\nprint('hi')"),
    ]
    assert loaded.code_sources() == ["import json", "# GET /hello\nprint('hi')"]
    parsed = loaded.parse()
    assert [(e.verb, e.path) for e in parsed.endpoints] == [("GET", "/hello")]
    assert parsed.startup_sources == ["import json"]


async def test_file_uri_language_and_defaults(tmp_path: Path) -> None:
    path = tmp_path / "my api.ipynb"
    _write(
        path,
        [],
        kernelspec={"name": "apache_toree_scala", "language": "python", "display_name": "Toree"},
        language_info={"name": "scala"},
    )
    loaded = await load_notebook(path.as_uri())
    assert (loaded.name, loaded.kernel_name, loaded.language, loaded.comment_prefix) == (
        "my api",
        "apache_toree_scala",
        "scala",
        "//",
    )
    bare = tmp_path / "bare.ipynb"
    _write(bare, [])
    loaded = await load_notebook(str(bare))
    assert (loaded.kernel_name, loaded.language, loaded.comment_prefix) == ("", "python", "#")


async def test_old_minor_version_without_cell_ids_loads(tmp_path: Path) -> None:
    path = tmp_path / "old.ipynb"
    cell: dict[str, Any] = {
        "cell_type": "code",
        "execution_count": None,
        "metadata": {},
        "outputs": [],
        "source": ["# GET /x\n", "1"],
    }
    path.write_text(json.dumps({"nbformat": 4, "nbformat_minor": 2, "metadata": {}, "cells": [cell]}))
    loaded = await load_notebook(str(path))
    assert loaded.code_sources() == ["# GET /x\n1"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"not json", "Cannot parse notebook"),
        (b"\xff\xfe", "Cannot parse notebook"),
        (b"[]", "Cannot parse notebook"),
        (b'{"nbformat": 4, "nbformat_minor": 2, "metadata": {}, "cells": {}}', "not a list"),
    ],
)
async def test_bad_content_is_a_notebook_error(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    with pytest.raises(NotebookError, match=message):
        await load_notebook(str(path))


async def test_unreadable_paths_are_notebook_errors(tmp_path: Path) -> None:
    with pytest.raises(NotebookError, match=r"Cannot read notebook .*missing\.ipynb: No such file"):
        await load_notebook(str(tmp_path / "missing.ipynb"))
    with pytest.raises(NotebookError, match="Cannot read notebook"):
        await load_notebook(str(tmp_path))
    with pytest.raises(NotebookError, match="only local file"):
        await load_notebook("file://elsewhere/x.ipynb")


def test_notebook_name_follows_kg_title_rule() -> None:
    assert notebook_name("simple_api.ipynb") == "simple_api"
    assert notebook_name("my.api.ipynb") == "my"
    assert notebook_name(".hidden") == ".hidden"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_root(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", tmp_path
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_http_notebook(http_root: tuple[str, Path]) -> None:
    base, root = http_root
    raw = _write(
        root / "remote_api.ipynb", _api_cells(), kernelspec={"name": "python3", "display_name": "Python 3"}
    )
    loaded = await load_notebook(f"{base}/remote_api.ipynb?x=1", timeout=5)
    assert (loaded.name, loaded.kernel_name, loaded.raw) == ("remote_api", "python3", raw)
    assert [e.path for e in loaded.parse().endpoints] == ["/hello"]


async def test_http_errors_are_notebook_errors(http_root: tuple[str, Path]) -> None:
    base, _ = http_root
    with pytest.raises(NotebookError, match="HTTP 404"):
        await load_notebook(f"{base}/nope.ipynb", timeout=5)
    with pytest.raises(NotebookError, match="Cannot fetch notebook"):
        await load_notebook("http://127.0.0.1:1/x.ipynb", timeout=5)

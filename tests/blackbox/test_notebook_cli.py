"""Black-box: the real `fastkg` command in notebook-http mode, configured by KG_* variables only — serving
test notebooks (local path or URL) and the bundled example, and refusing notebooks it cannot serve."""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

from tests.support import ROOT, fastkg_process, free_port, raw_http

TOKEN = "bb-notebook-token-0123456789"


def write_notebook(path: Path, cells: list[str | tuple[str, str]], kernel: str = "python3") -> Path:
    """An nbformat-4 notebook; a plain string is a code cell, ("markdown", text) a markdown cell."""
    notebook = new_notebook()
    notebook.metadata = {
        "kernelspec": {"name": kernel, "language": "python", "display_name": kernel},
        "language_info": {"name": "python"},
    }
    notebook.cells = [
        new_markdown_cell(cell[1]) if isinstance(cell, tuple) else new_code_cell(cell) for cell in cells
    ]
    nbformat.write(notebook, str(path))
    return path


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without any KG_*/FASTKG_* setting, plus `env`."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(("KG_", "FASTKG_"))}, **env}


def run_fastkg(env: dict[str, str], limit: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app"],
        env=clean_env(KG_IP="127.0.0.1", KG_PORT=str(free_port()), KG_PORT_RETRIES="0", **env),
        capture_output=True,
        text=True,
        timeout=limit,
        cwd=ROOT,
    )


SERVED = [
    "import json, os, time\nSEEDED = 'yes'",
    "# GET /hello\nprint('hello from ' + SEEDED)",
    "# GET /pid\nprint(os.getpid())",
    "# GET /echo/:word\nprint(json.dumps(json.loads(REQUEST)))",
    "# GET /sleep\ntime.sleep(30)",
]


# -- serving ---------------------------------------------------------------------------------------
async def test_served_from_kg_environment(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "nb_blackbox.ipynb", SERVED)
    public = tmp_path / "public"
    public.mkdir()
    (public / "readme.txt").write_text("public file")
    env = {
        "KG_API": "kernel_gateway.notebook_http",
        "KG_SEED_URI": str(notebook),
        "KG_PRESPAWN_COUNT": "2",
        "KG_AUTH_TOKEN": TOKEN,
        "KG_ALLOW_NOTEBOOK_DOWNLOAD": "True",
        "KG_STATIC_PATH": str(public),
        "FASTKG_REQUEST_TIMEOUT": "2",
    }
    with fastkg_process(clean_env(**env), tmp_path) as gw:
        async with gw.client as client:
            hello = await client.get("/hello")
            assert hello.status_code == 200
            assert hello.text == "hello from yes\n"
            assert hello.headers["content-type"].startswith("text/plain")
            pids = {(await client.get("/pid")).text for _ in range(4)}
            assert len(pids) == 2, f"KG_PRESPAWN_COUNT=2 should give a pool of 2 kernels: {pids}"
            request = json.loads((await client.get("/echo/hi?x=1&x=2")).text)
            assert request["path"] == {"word": "hi"}
            assert request["args"] == {"x": ["1", "2"]}
            assert "Authorization" not in request["headers"]
            assert (await client.get("/_api/source")).content == notebook.read_bytes()
            assert (await client.get("/public/readme.txt")).text == "public file"
            spec = (await client.get("/_api/spec/swagger.json")).json()
            assert spec["info"]["title"] == "nb_blackbox"
            assert "/echo/{word}" in spec["paths"]
            assert (await client.get("/sleep")).status_code == 504  # FASTKG_REQUEST_TIMEOUT
            assert (await client.get("/hello")).status_code == 200
            # Only the notebook API: no kernel API, and the token is enforced.
            assert (await client.get("/api/kernels")).status_code == 404
            assert (await client.get("/hello", headers={"Authorization": "token nope"})).status_code == 401


@contextlib.contextmanager
def http_directory(directory: Path) -> Iterator[str]:
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


async def test_seed_notebook_from_a_url(tmp_path: Path) -> None:
    write_notebook(tmp_path / "nb_remote.ipynb", SERVED[:2])
    with http_directory(tmp_path) as base:
        env = {"KG_API": "notebook-http", "KG_SEED_URI": f"{base}/nb_remote.ipynb"}
        with fastkg_process(clean_env(**env), tmp_path) as gw:
            async with gw.client as client:
                assert (await client.get("/hello")).text == "hello from yes\n"
                spec = (await client.get("/_api/spec/swagger.json")).json()
                assert spec["info"]["title"] == "nb_remote"


async def test_bundled_example_as_make_run_serves_it(tmp_path: Path) -> None:
    env = {"KG_API": "jupyter-websocket,notebook-http", "KG_SEED_URI": "examples/api.ipynb"}
    with fastkg_process(clean_env(**env), tmp_path) as gw:
        async with gw.client as client:
            hello = await client.get("/hello")
            assert (hello.status_code, hello.text) == (200, "hello world\n")
            item = await client.get("/items/1")
            assert item.status_code == 200
            assert item.headers["content-type"] == "application/json"
            assert item.json() == {"id": "1", "name": "apple"}
            missing = await client.get("/items/99")
            assert missing.status_code == 404
            assert missing.json() == {"error": "no such item"}
            listed = await client.get("/items")
            assert [entry["name"] for entry in listed.json()] == ["apple", "pear"]
            created = await client.post("/items", json={"name": "kiwi"})
            assert created.status_code == 201
            assert created.headers["content-type"] == "application/json"
            assert created.json() == {"name": "kiwi", "id": "3"}
            echoed = await client.post("/echo", json={"any": ["thing"]})
            assert echoed.json() == {"any": ["thing"]}
            assert (await client.get("/api/kernelspecs")).status_code == 200  # the kernel API, side by side
            assert (await client.get("/docs")).status_code == 200


# -- refusals --------------------------------------------------------------------------------------
def assert_refused(result: subprocess.CompletedProcess[str], expected: list[str]) -> None:
    output = result.stdout + result.stderr
    assert result.returncode != 0, f"started anyway:\n{output}"
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if all(text.lower() in line.lower() for text in expected)]
    assert lines, f"no single line mentions {expected}:\n{output}"


@pytest.mark.parametrize(
    ("cells", "kernel", "expected"),
    [
        (["x = 1", "# not an annotation\nprint(1)"], "python3", ["nb_refused", "no annotated cells"]),
        (["# GET /x\nprint(1)"], "nb-no-such-kernel", ["nb-no-such-kernel", "kernelspec"]),
    ],
    ids=["no-annotated-cell", "unknown-kernelspec"],
)
def test_unservable_notebook_is_refused(
    tmp_path: Path, cells: list[str], kernel: str, expected: list[str]
) -> None:
    notebook = write_notebook(tmp_path / "nb_refused.ipynb", list(cells), kernel=kernel)
    result = run_fastkg({"KG_API": "notebook-http", "KG_SEED_URI": str(notebook)})
    assert result.returncode == 2
    assert_refused(result, expected)
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_missing_notebook_is_refused(tmp_path: Path) -> None:
    missing = tmp_path / "nb_missing.ipynb"
    result = run_fastkg({"KG_API": "kernel_gateway.notebook_http", "KG_SEED_URI": str(missing)})
    assert_refused(result, [str(missing)])
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_notebook_that_is_not_json_is_refused(tmp_path: Path) -> None:
    broken = tmp_path / "nb_broken.ipynb"
    broken.write_text("{ this is not a notebook")
    result = run_fastkg({"KG_API": "notebook-http", "KG_SEED_URI": str(broken)})
    assert_refused(result, [str(broken)])


def test_notebook_http_without_a_notebook_is_refused() -> None:
    result = run_fastkg({"KG_API": "notebook-http"})
    assert_refused(result, ["KG_SEED_URI"])


def test_failing_startup_cell_is_refused(tmp_path: Path) -> None:
    notebook = write_notebook(
        tmp_path / "nb_startup_fails.ipynb",
        ["raise RuntimeError('startup broke')", "# GET /hello\nprint('never served')"],
    )
    result = run_fastkg({"KG_API": "notebook-http", "KG_SEED_URI": str(notebook), "KG_PRESPAWN_COUNT": "2"})
    assert_refused(result, ["could not start", "RuntimeError: startup broke"])


async def test_the_command_takes_request_lines_tornado_takes(tmp_path: Path) -> None:
    """The CLI's HTTP parser: an unknown method is KG's JSON 405 (not a plain-text 400), and raw UTF-8
    in the request target, as curl sends `?q=☃`, is accepted."""
    env = {"KG_API": "notebook-http", "KG_SEED_URI": str(ROOT / "tests" / "notebooks" / "kg_compat.ipynb")}
    with fastkg_process(clean_env(**env), tmp_path) as gw:
        async with gw.client:
            foo = b"FOO /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            status, headers, body = await raw_http(gw.url, foo)
            assert (status, headers["content-type"]) == (405, "application/json")
            assert json.loads(body)["reason"] == "Method Not Allowed"
            snowman = "GET /args?q=\u2603 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
            status, headers, body = await raw_http(gw.url, snowman)
            assert (status, json.loads(body)) == (200, {"q": ["\u2603"]})
            assert headers["content-type"] == "text/plain"

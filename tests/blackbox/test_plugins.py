"""Plug-in personalities (KG_API) in the real `fastkg` process: by entry-point name and by module name."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from tests.support import ROOT, fastkg_process, stop_process

PLUGINS = ROOT / "tests" / "plugins"  # holds fastkg_echo_personality and its .dist-info (entry point "echo")

pytestmark = pytest.mark.timeout(180)


def plugin_env(api: str, **more: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(PLUGINS), os.environ.get("PYTHONPATH", "")) if p)
    return {"KG_API": api, "PYTHONPATH": path, "KG_LIST_KERNELS": "True", **more}


def seed_notebook(tmp_path: Path) -> Path:
    cells = [
        nbformat.v4.new_code_cell("seeded = True"),
        nbformat.v4.new_code_cell("# echo: do not seed\nskipped = True"),
    ]
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "seed.ipynb"
    nbformat.write(notebook, path)
    return path


async def test_plugin_by_entry_point_name_serves_routes_filters_seeds_and_shuts_down(tmp_path: Path) -> None:
    env = plugin_env("jupyter-websocket,echo", KG_SEED_URI=str(seed_notebook(tmp_path)))
    with fastkg_process(env, tmp_path) as gw:
        assert gw.process is not None
        assert (await gw.client.get("/echo/kernels")).json() == {"count": 0}
        kernel_id = await gw.start_kernel()  # the built-in API is served alongside
        assert (await gw.client.get("/echo/kernels")).json() == {"count": 1}

        # A route of the plug-in that starts, uses and stops a kernel through the kernel service;
        # the kernel was seeded with the cells the plug-in's should_seed_cell accepted.
        code = "print('seeded' in globals(), 'skipped' in globals())"
        run = await gw.client.post("/echo/run", json={"code": code}, timeout=120)
        assert run.status_code == 200, run.text
        assert run.json() == {"status": "ok", "stdout": "True False\n"}
        assert (await gw.client.get("/echo/kernels")).json() == {"count": 1}

        spec = (await gw.client.get("/openapi.json")).json()
        assert "/echo/run" in spec["paths"]
        assert (await gw.client.delete(f"/api/kernels/{kernel_id}")).status_code == 204
        assert stop_process(gw.process) == 0
        assert "echo personality: shut down" in gw.log()


async def test_plugin_by_module_name_alone(tmp_path: Path) -> None:
    with fastkg_process(plugin_env("fastkg_echo_personality", KG_BASE_URL="/gw"), tmp_path) as gw:
        assert (await gw.client.get("/echo/kernels")).json() == {"count": 0}
        run = await gw.client.post("/echo/run", json={"code": "print(6 * 7)"}, timeout=120)
        assert run.json() == {"status": "ok", "stdout": "42\n"}
        # Only the named personality is served, as in KG: even /api belongs to jupyter-websocket.
        assert (await gw.client.get("/api/kernels")).status_code == 404
        assert (await gw.client.get("/api")).status_code == 404


@pytest.mark.parametrize(
    ("api", "expected"),
    [
        ("no_such_personality", "unknown API 'no_such_personality' (KG_API)"),
        ("json", "API plug-in 'json' (KG_API) has no create_personality function"),
        ("kernel_gateway.bogus", "unknown API 'kernel_gateway.bogus'"),
        ("bad name!", "unknown API 'bad name!'"),
    ],
)
def test_unknown_plugin_refuses_to_start_with_one_line(api: str, expected: str, tmp_path: Path) -> None:
    env = {**os.environ, **plugin_env(api), "KG_PORT": "0"}
    result = subprocess.run(
        [sys.executable, "-m", "app"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert "Traceback" not in result.stderr

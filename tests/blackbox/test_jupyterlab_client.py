"""JupyterLab's own client library (`@jupyterlab/services`, under Node) against the real `fastkg` command.

This is the code the JupyterLab front end runs: kernelspecs, kernel start/restart/interrupt/shutdown over
REST, the channels websocket in the v1 binary subprotocol (JupyterLab always offers it), stdin, a comm
with binary buffers both ways (as ipywidgets uses), and sessions.
tests/node/lab_client.mjs drives it and reports what it saw; the assertions are here.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.support import ROOT, fastkg_process

CLIENT = ROOT / "tests" / "node" / "lab_client.mjs"
TOKEN = "token-for-jupyterlab"


def run_lab_client(base_url: str) -> dict[str, Any]:
    completed = subprocess.run(
        ["node", str(CLIENT), base_url, TOKEN],
        cwd=CLIENT.parent,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    # The library logs to stdout too; the client's report is the last line.
    report: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return report


def test_jupyterlab_services_drive_the_kernel_api(tmp_path: Path) -> None:
    env = {"KG_AUTH_TOKEN": TOKEN, "KG_LIST_KERNELS": "True", "KG_BASE_URL": "/lab-gw"}
    with fastkg_process(env, tmp_path) as gw:
        seen = run_lab_client(f"{gw.url}/")
        log = gw.log()
    assert "failure" not in seen, seen.get("failure")
    assert seen["defaultSpec"] == "python3"
    assert "python3" in seen["specNames"]
    assert seen["protocol"] == "v1.kernel.websocket.jupyter.org"
    assert seen["infoLanguage"] == "python"
    assert seen["print"] == {"status": "ok", "stdout": "42\n", "results": [], "errors": []}
    assert seen["result"]["results"] == ["2"]
    assert seen["stdin"]["stdout"] == "hello lab\n"
    assert seen["error"]["status"] == "error"
    assert seen["error"]["errors"] == ["ZeroDivisionError"]
    assert seen["comm"] == {"data": {"echo": {"x": 1}}, "buffers": [[3, 2, 1]]}, "comm buffers both ways"
    assert seen["interrupted"] == "KeyboardInterrupt"
    assert seen["afterRestart"] == {"status": "ok", "stdout": "False\n", "results": [], "errors": []}
    assert seen["runningBefore"] is True
    assert seen["runningAfter"] is False
    assert seen["sessionPath"] == "lab.ipynb"
    assert seen["sessionRun"]["stdout"] == "in a session\n"
    assert seen["sessionListed"] is True
    assert seen["sessionAfter"] is False
    assert TOKEN not in log

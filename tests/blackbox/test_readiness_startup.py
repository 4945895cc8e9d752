"""/readyz on the real command: never ready before the warm pool (seeded by a slow startup cell) is full."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.test_notebook_http import write_notebook
from tests.support import ROOT, free_port, stop_process

TOKEN = "startup-token-0123456789"


def warm_kernels(base: str) -> float:
    text = httpx.get(f"{base}/metrics", headers={"Authorization": f"token {TOKEN}"}, timeout=10).text
    for family in text_string_to_metric_families(text):
        if family.name == "fastkg_warm_kernels":
            return float(family.samples[0].value)
    raise AssertionError("fastkg_warm_kernels is missing")


@pytest.mark.timeout(180)
def test_first_ready_answer_comes_after_the_warm_pool_is_full(tmp_path: Path) -> None:
    seed = write_notebook(tmp_path / "slow_seed.ipynb", ["import time\ntime.sleep(3)\nSEEDED = True"])
    port = free_port()
    env = {
        **os.environ,
        "KG_IP": "127.0.0.1",
        "KG_PORT": str(port),
        "KG_PORT_RETRIES": "0",
        "KG_AUTH_TOKEN": TOKEN,
        "KG_SEED_URI": str(seed),
        "FASTKG_WARM_POOL": "2",
    }
    base = f"http://127.0.0.1:{port}"
    log = (tmp_path / "fastkg.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "app"], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    began, answers = time.monotonic(), []
    try:
        deadline = began + 120
        while time.monotonic() < deadline:
            assert process.poll() is None, (tmp_path / "fastkg.log").read_text()[-2000:]
            try:
                response = httpx.get(f"{base}/readyz", timeout=2)
            except httpx.TransportError:
                answers.append("refused")
                time.sleep(0.05)
                continue
            answers.append(response.status_code)
            if response.status_code == 200:
                break
        assert answers[-1] == 200
        assert time.monotonic() - began > 3  # the seed cell alone takes 3 s
        assert set(answers[:-1]) <= {"refused", 503}
        assert warm_kernels(base) == 2  # both warm kernels were started and seeded before the first 200
        assert httpx.get(f"{base}/livez", timeout=5).status_code == 200
    finally:
        stop_process(process)
        log.close()

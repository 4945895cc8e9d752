"""/readyz follows the notebook pool: 503 with the reason while a broken pool kernel is replaced (its slow
startup cell running), 200 once the pool is full again; notebook request metrics on the same run."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from tests.integration.test_notebook_http import write_notebook
from tests.integration.test_ops_metrics import scrape, value
from tests.support import serve

TOKEN = "ready-token-0123456789"
CELLS = [
    "import signal, time\ntime.sleep(2)  # a slow startup cell",
    "# GET /hello\nprint('hello')",
    # ignores the interrupt that follows its timeout, so the pool must replace the kernel
    "# GET /stuck\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\ntime.sleep(60)",
]


@pytest.mark.timeout(240)
async def test_readyz_is_503_until_the_pool_is_refilled(tmp_path: Path) -> None:
    notebook = write_notebook(tmp_path / "ready.ipynb", CELLS)
    settings = {
        "auth_token": TOKEN,
        "api": "notebook-http",
        "seed_uri": str(notebook),
        "prespawn_count": 1,
        "request_timeout": 1.0,
    }
    async with serve(**settings) as gw, httpx.AsyncClient(base_url=gw.url, timeout=60) as anonymous:
        first = await anonymous.get("/readyz")
        assert first.status_code == 200  # the first answer comes after the pool was filled
        text = await scrape(gw)
        assert value(text, "fastkg_pool_kernels", service="ready", version="", state="idle") == 1
        assert (await gw.client.get("/hello")).text == "hello\n"
        stuck = await gw.client.get("/stuck")
        assert stuck.status_code == 504
        reasons = []
        async with asyncio.timeout(60):
            while (probe := await anonymous.get("/readyz")).status_code == 503:
                reasons.append(probe.json()["message"])
                await asyncio.sleep(0.1)
        assert probe.status_code == 200
        assert reasons, "the replacement (a 2 s startup cell) was never seen"
        assert "refilling: 0 of 1 kernels" in reasons[0]
        assert (await gw.client.get("/hello")).text == "hello\n"
        text = await scrape(gw)
        endpoint = {"service": "ready", "version": "", "endpoint": "/hello", "method": "GET"}
        assert value(text, "fastkg_notebook_requests_total", **endpoint, status="200") == 2
        assert value(text, "fastkg_notebook_request_duration_seconds_count", **endpoint) == 2
        stuck_labels = {**endpoint, "endpoint": "/stuck", "status": "504"}
        assert value(text, "fastkg_notebook_requests_total", **stuck_labels) == 1
        assert value(text, "fastkg_pool_wait_seconds_count", service="ready", version="") == 3

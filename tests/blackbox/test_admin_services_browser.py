"""The admin page's notebook services panel in real headless Chromium against the real `fastkg` command:
deploy a notebook by upload, watch its request count and rate move under traffic (pushed over the event
stream: the page does not poll), deploy a second version, roll back, scale the pool and undeploy, all from
the page."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.async_api import Page, Request, Response, async_playwright

from tests.blackbox.test_admin_browser import CHROMIUM_ARGS, WAIT_MS
from tests.services_support import notebook
from tests.support import ROOT, Gateway, fastkg_process

TOKEN = "admin-services-token-0123456789"
ROW = 'tr[data-service="hello"]'
LIST = "/admin/api/services"
LIVE_WINDOW = 6.0  # seconds of moving numbers without a read: three periods of the old 2 s polling


def reads_list(message: Request | Response) -> bool:
    """A GET of the services list (the page's only way to read it besides the event stream)."""
    request = message.request if isinstance(message, Response) else message
    return request.method == "GET" and request.url.split("?")[0].endswith(LIST)


def hello_notebook(tag: str) -> bytes:
    return notebook(f"# GET /hello\nprint({tag!r})", "# GET /fail\nraise ValueError('no')")


async def field(page: Page, name: str) -> str:
    return await page.inner_text(f'{ROW} td[data-field="{name}"]')


async def until_field(page: Page, name: str, predicate: Callable[[str], bool]) -> str:
    async with asyncio.timeout(WAIT_MS / 1000):
        while True:
            with_row = await page.query_selector(ROW)
            text = await field(page, name) if with_row else ""
            if with_row and predicate(text):
                return text
            await asyncio.sleep(0.2)


async def upload(page: Page, path: Path) -> None:
    await page.fill("#deploy-name", "hello")
    await page.set_input_files("#deploy-file", str(path))
    await page.click("#deploy-form button[type=submit]")


async def version_served(gw: Gateway) -> str:
    return (await gw.client.get("/services/hello/hello")).text.strip()


@pytest.mark.timeout(300)
async def test_admin_page_drives_a_service(tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "chromium is installed by tests/setup_browser.py (make test)"
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    first, second = tmp_path / "v1" / "hello.ipynb", tmp_path / "v2" / "hello.ipynb"
    first.write_bytes(hello_notebook("v1"))
    second.write_bytes(hello_notebook("v2"))
    env = {"KG_AUTH_TOKEN": TOKEN, "KG_API": "jupyter-websocket,services", "KG_LIST_KERNELS": "true"}
    with fastkg_process(env, tmp_path) as gw:
        problems: list[str] = []
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            try:
                page = await browser.new_page(viewport={"width": 1700, "height": 720})
                page.on("pageerror", lambda error: problems.append(str(error)))
                page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
                reads: list[str] = []
                page.on("request", lambda request: reads.append(request.url) if reads_list(request) else None)
                await page.goto(f"{gw.url}/admin")
                await page.wait_for_selector("#login-form", state="visible", timeout=WAIT_MS)
                await page.fill("#token", TOKEN)
                await page.click("#login-form button[type=submit]")
                await page.wait_for_selector("#deploy-form", state="visible", timeout=WAIT_MS)
                assert await page.inner_text("#services-status") == "No services deployed."
                assert reads == []  # the empty list came over the event stream

                # deploy by upload from the page; the page reads the list once for immediate feedback
                async with page.expect_response(reads_list, timeout=2 * WAIT_MS):
                    await upload(page, first)
                serving = f'{ROW}[data-state="serving"][data-version="1"]'
                await page.wait_for_selector(serving, timeout=WAIT_MS)
                assert await field(page, "requests") == "0"
                assert "GET /hello" in await field(page, "endpoints")
                docs = await page.get_attribute(f"{ROW} a", "href")
                assert docs == "/services/hello/docs"
                assert (await gw.client.get(docs)).status_code == 200
                assert await version_served(gw) == "v1"

                # traffic moves the numbers in the page, pushed by the event stream: rounds of two requests,
                # each shown on the page before the next, for longer than a poll would have needed
                served = (await gw.client.get("/api/services/hello")).json()["traffic"]["requests"]
                assert served == 2  # one for the version and one for its Swagger UI
                reads_before, started, sent, rounds = len(reads), time.monotonic(), 0, 0
                while rounds < 4 or time.monotonic() - started < LIVE_WINDOW:
                    for _ in range(2):
                        fail = sent == 3  # one 5xx among them
                        answer = await gw.client.get("/services/hello/" + ("fail" if fail else "hello"))
                        assert answer.status_code == (500 if fail else 200)
                        sent += 1
                    rounds += 1
                    shown = str(served + sent)
                    await until_field(page, "requests", lambda text, shown=shown: text == shown)
                assert time.monotonic() - started >= LIVE_WINDOW
                assert reads[reads_before:] == []  # no polling: every one of those numbers was pushed
                traffic = (await gw.client.get("/api/services/hello")).json()["traffic"]
                assert (traffic["requests"], traffic["errors"]) == (served + sent, 1)
                assert float(await field(page, "rate")) > 0
                errors, share = (await field(page, "errors")).split(" ", 1)
                assert errors == "1"
                assert abs(float(share.strip("( %)")) - 100 / (served + sent)) < 0.051, share
                latency = await field(page, "latency")
                assert latency.count(" ms") == 2, latency

                # a second version by uploading again under the same name, then roll back from the page
                await upload(page, second)
                await page.wait_for_selector(f'{ROW}[data-version="2"]', timeout=WAIT_MS)
                assert await version_served(gw) == "v2"
                kernel_id = await gw.start_kernel()
                await page.wait_for_selector(f'tr[data-kernel-id="{kernel_id}"]', timeout=WAIT_MS)
                await page.screenshot(path=tmp_path / "admin-services.png", full_page=True)
                if os.environ.get("FASTKG_UPDATE_SCREENSHOT"):
                    await page.screenshot(path=ROOT / "docs" / "admin.png", full_page=True)
                await page.click(f'{ROW} button[data-action="rollback"]')
                await page.wait_for_selector(f'{ROW}[data-version="1"]', timeout=WAIT_MS)
                assert await version_served(gw) == "v1"

                # scale the pool from the page: a PUT with pool_min/pool_max
                await page.fill(f'{ROW} input[name="pool_max"]', "2")
                await page.click(f'{ROW} button[data-action="scale"]')
                await until_field(page, "pool", lambda text: text.endswith("1–2"))
                pool = (await gw.client.get("/api/services/hello")).json()["pool"]
                assert (pool["min"], pool["max"]) == (1, 2)
                assert await version_served(gw) == "v1"  # the active notebook, new settings

                await page.click(f'{ROW} button[data-action="undeploy"]')
                await page.wait_for_selector(ROW, state="detached", timeout=WAIT_MS)
                assert (await gw.client.get("/api/services/hello")).status_code == 404
                await page.screenshot(path=tmp_path / "admin-services-after.png")
                html = await page.content()
            finally:
                await browser.close()
        await gw.client.aclose()
    assert problems == []
    assert TOKEN not in html
    assert TOKEN not in gw.log()
    assert (tmp_path / "admin-services.png").stat().st_size > 10_000
